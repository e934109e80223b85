#!/bin/sh
# Install the PST/MSG oracle tools used by crates/mailbox/tests/pst_oracle.rs:
#   readpst   (Debian package pst-utils)
#   pffexport (Debian package pff-tools)
# Idempotent: does nothing when both tools are already on PATH; runs
# `apt-get update` at most once, and only when the packages are not
# installable from the current package lists.
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

if have readpst && have pffexport; then
    echo "install-oracles: readpst and pffexport already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then SUDO="sudo"; else
        echo "install-oracles: need root (or sudo) to run apt-get" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show pst-utils >/dev/null 2>&1 || ! apt-cache show pff-tools >/dev/null 2>&1; then
    $SUDO apt-get update
fi
$SUDO apt-get install -y --no-install-recommends pst-utils pff-tools

have readpst && echo "install-oracles: $(command -v readpst)"
have pffexport && echo "install-oracles: $(command -v pffexport)"
