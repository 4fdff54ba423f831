#!/usr/bin/env bash
#
# Builds the pinned external tools into .bin/ if missing or out of date:
#   tools.sh temporal   the Temporal CLI (dev server + Web UI), tools/temporal
#   tools.sh lint       workflowcheck and staticcheck, tools/lint
#   tools.sh            both
# The other scripts call the same functions on demand; this is for warming
# .bin/ ahead of time (e.g. in a CI image).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

command -v go >/dev/null || die "Go is not installed (billflow needs Go 1.26: https://go.dev/dl/)"
case ${1:-all} in
  temporal) ensure_temporal_cli ;;
  lint) ensure_lint_tools ;;
  all)
    ensure_temporal_cli
    ensure_lint_tools
    ;;
  *) die "usage: $0 [temporal|lint|all]" ;;
esac
ls -l "$BIN_DIR"
