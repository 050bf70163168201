#!/usr/bin/env bash
# deploy/test.sh: the project's whole test command, run by CI (.ci/run) and
# by developers alike. Exits non-zero on the first failing stage.
#
#   1. deploy/setup.sh            machine packages, ONNX Runtime, models, media
#   2. cargo fmt --all --check
#   3. cargo clippy --workspace --all-targets -- -D warnings
#   4. cargo build --workspace --bins   (the end-to-end tests run these)
#   5. cargo nextest run --workspace    (profile `ci` when CI=true; see
#      .config/nextest.toml), or `cargo test --workspace` without nextest
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

stage() { printf '\n==> %s\n' "$*"; }
timed() {
    local start=$SECONDS
    "$@"
    printf '    (%ss)\n' $((SECONDS - start))
}

stage "setup"
timed bash deploy/setup.sh

stage "cargo fmt --all --check"
timed cargo fmt --all --check

stage "cargo clippy --workspace --all-targets -- -D warnings"
timed cargo clippy --workspace --all-targets -- -D warnings

stage "cargo build --workspace --bins"
timed cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
    profile=default
    [[ ${CI:-} == true ]] && profile=ci
    stage "cargo nextest run --workspace --profile $profile"
    timed cargo nextest run --workspace --profile "$profile"
else
    stage "cargo test --workspace (cargo-nextest not found)"
    # One test at a time: the end-to-end tests start real servers.
    timed cargo test --workspace --no-fail-fast -- --test-threads=1
fi
