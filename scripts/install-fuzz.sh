#!/usr/bin/env bash
# Installs cargo-fuzz (used by scripts/fuzz.sh) if it is missing. cargo-fuzz needs nightly
# flags (-Zsanitizer=address, -Zbuild-std is not used); on a stable toolchain scripts/fuzz.sh sets
# RUSTC_BOOTSTRAP=1 so stable rustc accepts them.
set -euo pipefail
if cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz already installed: $(cargo fuzz --version)"
    exit 0
fi
cargo install cargo-fuzz --locked
cargo fuzz --version
