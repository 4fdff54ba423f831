#!/usr/bin/env bash
#
# Static checks, failing on the first problem: go vet (plain and with the
# `integration` build tag, whose files would otherwise go unchecked),
# workflowcheck (Temporal workflow determinism) and staticcheck. The linters
# are pinned in tools/lint and built into .bin/ on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

command -v go >/dev/null || die "Go is not installed (billflow needs Go 1.26: https://go.dev/dl/)"
ensure_lint_tools

run_step "go vet ./..." go vet ./...
run_step "go vet -tags integration ./..." go vet -tags integration ./...
run_step "workflowcheck ./..." "$BIN_DIR/workflowcheck" ./...
# -matrix lints both builds in one run and merges the results, so a helper
# used only by integration tests is not reported as unused.
run_step "staticcheck ./... (default and integration builds)" \
  "$BIN_DIR/staticcheck" -matrix ./... <<'MATRIX'
default:
integration: -tags=integration
MATRIX
