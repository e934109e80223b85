#!/bin/sh
# Everything the tests need besides the Rust toolchain, from Debian's registry and PyPI:
#   openssl      oracle and fixture generator (`openssl cms`)
#   gpgsm        oracle and fixture generator
#   readpst / pffexport  PST oracles (scripts/install-oracles.sh)
#   python3 cryptography  oracle for pyca-made messages (fixtures/generate only)
#   bzip2, xz-utils, zstd, lz4  compress test messages as Dovecot's mail_compress stores them
# Idempotent: installs only what is missing; `apt-get update` at most once.
set -eu
here=$(dirname "$0")
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
if [ "$(id -u)" -ne 0 ] && have sudo; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

missing=""
have openssl || missing="$missing openssl"
have gpgsm || missing="$missing gpgsm"
have bzip2 || missing="$missing bzip2"
have xz || missing="$missing xz-utils"
have zstd || missing="$missing zstd"
have lz4 || missing="$missing lz4"
if [ -n "$missing" ]; then
    $SUDO apt-get update
    # shellcheck disable=SC2086
    $SUDO apt-get install -y --no-install-recommends $missing
fi
sh "$here/install-oracles.sh"
