#!/usr/bin/env bash
#
# THE test command: builds, lints and runs every test tier, failing on the
# first problem. CI runs it through .ci/run.
#
#   1. go build ./..., and examples/app (an outside module importing billing)
#   2. go vet (plain + integration tag), workflowcheck, staticcheck (lint.sh)
#   3. go test -race ./...   unit and Temporal testsuite tests: no servers
#      then scripts/fuzz.sh: every fuzz target fuzzes for a few seconds
#   4. a private PostgreSQL cluster and an in-memory Temporal dev server,
#      both brand new, then
#      go test -tags integration -p 1 ./...   tests against real servers
#      (the page tests drive headless Chromium: installed here with apt-get
#      when missing and running as root, as CI does; else the command says
#      how to install it and fails)
#   5. optionally (BILLFLOW_REGTEST=1) scripts/regtest.sh: the Lightning rail
#      against real btcd + lnd
#   6. optionally (BILLFLOW_CLUSTER=1) scripts/cluster.sh --smoke: the cluster
#      tier (Temporal server on PostgreSQL, two worker replicas) up, checked,
#      down; and scripts/compose-check.sh: docker-compose.yml's Temporal jobs
#      run on the same binaries without Docker
#   7. optionally (BILLFLOW_CHAOS=1) scripts/chaos.sh: the chaos test on the
#      cluster tier (about 12 minutes; BILLFLOW_CHAOS_ARGS, e.g.
#      "--duration 3m", shortens it)
#
# The integration tests get, in their environment:
#   BILLFLOW_TEST_DATABASE_URL  admin URL of the cluster (database `postgres`);
#                               each test creates its own throwaway database
#   TEMPORAL_ADDRESS            host:port of the dev server
#   TEMPORAL_NAMESPACE          default
#   STRIPE_MOCK_BIN             .bin/stripe-mock (Stripe's spec-validating mock)
#   TEMPORAL_CLI                absolute path of .bin/temporal, for tests that
#                               start their own dev server
#                               (testsuite.DevServerOptions.ExistingPath)
# and internal/testkit gives each test process a BILLFLOW_PAYLOAD_KEYS (unless
# set: `plaintext` turns encryption off), so the tier runs with Temporal
# payloads encrypted and the processes it starts inherit the key.
# Set BILLFLOW_TEST_DATABASE_URL (or DATABASE_URL) beforehand to use an
# existing PostgreSQL instead; its role needs CREATEDB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

T0=$(now_ms)
WORK=""

cleanup() {
  local rc=$?
  set +e
  trap - INT TERM HUP
  temporal_down
  pg_down
  if [[ -n $WORK ]]; then
    if ((rc == 0)); then
      rm -rf "$WORK"
    else
      # Keep the server logs of a failed run; the cluster itself is useless.
      rm -rf "$WORK/pg/pgdata"
      printf 'server logs kept in %s/logs\n' "$WORK" >&2
    fi
  fi
  if ((rc == 0)); then
    printf '\nPASS: all checks and tests passed in %s\n' "$(fmt_duration $(($(now_ms) - T0)))"
  else
    printf '\nFAIL (exit %d) after %s\n' "$rc" "$(fmt_duration $(($(now_ms) - T0)))" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

command -v go >/dev/null || die "Go is not installed (billflow needs Go 1.26: https://go.dev/dl/)"
# The tests must reach the private servers started below, never a remote
# Temporal configured in the caller's shell.
local_stack_env

run_step "go build ./..." go build ./...

# An application's module imports package billing through a replace of
# billflow alone: it must build without billflow's own replace directives
# (lnd's protobuf fork, the btcec pin), so billing must not reach them.
# -mod=mod resolves from examples/app/go.sum via the module proxy, or from
# the module cache when offline (GOPROXY=off) after a first run.
run_step "examples/app builds against billing (outside module, no replaces but billflow's)" \
  bash -c 'cd examples/app && GOFLAGS="-mod=mod -buildvcs=false" go build -o /dev/null ./...'

bash scripts/lint.sh

# The race detector needs cgo, hence a C compiler. Missing one is a machine
# problem, not a test failure: say so and run without it.
race=(-race)
if [[ $(go env CGO_ENABLED) != 1 ]] || ! command -v "$(go env CC)" >/dev/null 2>&1; then
  warn "no C compiler (cgo disabled): running unit tests WITHOUT the race detector; 'apt-get install gcc' enables it"
  race=()
fi
run_step "go test ${race[*]} -count=1 ./...   (unit + testsuite)" \
  go test "${race[@]}" -count=1 ./...
# Each fuzz target fuzzes a few seconds beyond its seeds (which the unit
# tier ran); BILLFLOW_FUZZTIME sets the seconds (scripts/fuzz.sh).
run_step "fuzz targets, ${BILLFLOW_FUZZTIME:-3}s each (scripts/fuzz.sh)" bash scripts/fuzz.sh "${BILLFLOW_FUZZTIME:-3}"

# --- integration tier: real PostgreSQL + real Temporal dev server ----------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/billflow-test.XXXXXX")
# mktemp makes it private to us; when we are root, the cluster runs as the
# `postgres` user, which must be able to enter it.
chmod 755 "$WORK"
LOG_DIR=$WORK/logs

printf '\n==> starting private servers (logs in %s)\n' "$LOG_DIR" >&2
if [[ -n ${BILLFLOW_TEST_DATABASE_URL:-} ]]; then
  log "using BILLFLOW_TEST_DATABASE_URL from the environment (no private cluster)"
elif [[ -n ${DATABASE_URL:-} ]]; then
  log "using DATABASE_URL from the environment as the test admin URL (no private cluster)"
  export BILLFLOW_TEST_DATABASE_URL=$DATABASE_URL
else
  # Always a new cluster: tests never see data from an earlier run.
  pg_up "$WORK/pg" --ephemeral
  export BILLFLOW_TEST_DATABASE_URL=$PG_ADMIN_URL
fi
temporal_up "$WORK/temporal" --headless
export TEMPORAL_CLI=$TEMPORAL_BIN
# The card rail's request shapes are checked against stripe-mock.
ensure_stripe_mock
export STRIPE_MOCK_BIN=$BIN_DIR/stripe-mock
# The invoice and account page tests run in a real browser.
ensure_chromium
export BILLFLOW_CHROMIUM=${BILLFLOW_CHROMIUM:-/usr/bin/chromium}
# Screenshots of failed browser tests are kept here (t.TempDir is removed).
export BILLFLOW_TEST_ARTIFACTS=${BILLFLOW_TEST_ARTIFACTS:-$PWD/.data/test-artifacts}

run_step "go test -tags integration -count=1 -p 1 -timeout 40m ./...   (against the servers)" \
  go test -tags integration -count=1 -p 1 -timeout 40m ./...

# Optional tier: the Lightning rail against real lnd and btcd (simnet), built
# from tools/lnd (~2 min the first time). BILLFLOW_REGTEST=1 turns it on.
if [[ ${BILLFLOW_REGTEST:-} == 1 ]]; then
  run_step "regtest tier: real btcd + two lnd nodes (scripts/regtest.sh)" bash scripts/regtest.sh
else
  log "regtest tier skipped (BILLFLOW_REGTEST=1 runs it: real btcd + two lnd nodes)"
fi

# Optional tier: the cluster tier (Temporal server on PostgreSQL, two worker
# replicas) comes up, shows a new tenant's workflow in the server's
# visibility and two pollers, and goes down: about 30 s once built, but the
# first run builds the Temporal server (~5-6 min). BILLFLOW_CLUSTER=1 turns it on.
if [[ ${BILLFLOW_CLUSTER:-} == 1 ]]; then
  run_step "cluster tier smoke (scripts/cluster.sh --smoke)" bash scripts/cluster.sh --smoke
  run_step "docker-compose.yml's Temporal jobs on the same binaries (scripts/compose-check.sh)" bash scripts/compose-check.sh
else
  log "cluster tier skipped (BILLFLOW_CLUSTER=1 runs scripts/cluster.sh --smoke and scripts/compose-check.sh)"
fi

# Optional tier: the chaos test on the cluster tier (worker kills, server,
# PostgreSQL, api and sandbox restarts; money and secret invariants checked
# afterwards). 8 minutes of chaos plus settling: BILLFLOW_CHAOS=1 turns it on.
if [[ ${BILLFLOW_CHAOS:-} == 1 ]]; then
  # shellcheck disable=SC2086 # BILLFLOW_CHAOS_ARGS is a list of flags
  run_step "chaos test on the cluster tier (scripts/chaos.sh)" bash scripts/chaos.sh ${BILLFLOW_CHAOS_ARGS:-}
else
  log "chaos tier skipped (BILLFLOW_CHAOS=1 runs scripts/chaos.sh: 8 minutes of faults on the cluster tier, then the invariants)"
fi
