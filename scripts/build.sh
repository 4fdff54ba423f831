#!/usr/bin/env bash
#
# Compiles every package, then the two programs into .bin/: the worker (hosts
# the workflows and activities) and starter (the operator CLI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

command -v go >/dev/null || die "Go is not installed (billflow needs Go 1.26: https://go.dev/dl/)"
mkdir -p "$BIN_DIR"
run_step "go build ./..." go build ./...
run_step "go build -o .bin/worker ./worker" go build -o "$BIN_DIR/worker" ./worker
run_step "go build -o .bin/starter ./starter" go build -o "$BIN_DIR/starter" ./starter
