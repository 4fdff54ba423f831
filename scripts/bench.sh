#!/usr/bin/env bash
#
# The benchmark harness (bench/): runs one scenario against a worker built
# from this checkout, prints a Markdown table and writes the result as JSON
# under bench/results/ (git-ignored) with the machine, the commit and the time.
#
#   scripts/bench.sh [--baseline REV] [--FLAG=VALUE ...] [SCENARIO] [N]
#
#   SCENARIO  storm (default): N tenants (default 20) renewing on one instant,
#                 boundary -> invoice created -> invoice paid, every invoice
#                 verified
#             ceiling: N minimal workflows (timer + one activity) on the same
#                 server, firing at one instant: the floor any design pays
#             history: Temporal events per tenant-period on the happy path
#                 (N tenants, default 3)
#             idle: PostgreSQL statements and Temporal tasks per idle tenant
#                 per hour (N tenants, default 20; --window=1m)
#             pool: free-tier pool debits per second with N concurrent
#                 clients (default 32), the atomic conditional UPDATE vs
#                 SELECT ... FOR UPDATE then UPDATE, same database, same run
#                 (--debits=20000 per pattern); needs no worker
#   --baseline REV  also builds the worker from REV (exported with git archive
#                 into a temporary directory), runs the same scenario with it against
#                 the same servers in the same run, and prints the ratio
#   --FLAG=VALUE    passed to the bench command: --period=90s, --window=2m,
#                 --timeout=20m; history: --rail=nwc (tenants pay over NWC
#                 instead of the card), --record=DIR (write the period run's
#                 and the invoice's histories as replay fixtures)
#                 (see go run ./bench/cmd/bench -h)
#
# The worker gets this environment (BILLFLOW_WORKER_POLLERS and
# BILLFLOW_WORKER_STICKY_TIMEOUT try its tuning); with
# BILLFLOW_BENCH_WORKER_HTTP_ADDR=127.0.0.1:9465 it serves /metrics there
# (Temporal SDK metrics: task latencies, polls, sticky cache) during the run.
#
# It starts a private PostgreSQL cluster (with pg_stat_statements loaded) and
# a Temporal dev server on a SQLite file (the dev stack's shape) on free
# ports, and stops them at the end. With TEMPORAL_ADDRESS and
# BILLFLOW_TEST_DATABASE_URL (or DATABASE_URL; a role that may create
# databases) set, it uses those servers instead. The Stripe, Lightning, NWC
# and Nostr sandboxes run inside the bench process. Timings never go into the
# tests: this is too slow for CI and is not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

BASELINE=""
EXTRA=()
POS=()
while (($#)); do
  case $1 in
    --baseline)
      BASELINE=${2:?--baseline needs a commit, branch or tag}
      shift 2
      ;;
    --baseline=*)
      BASELINE=${1#--baseline=}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    --*=*)
      EXTRA+=("-${1#--}")
      shift
      ;;
    -*) die "unknown option $1 (flags for the bench take the form --flag=value)" ;;
    *)
      POS+=("$1")
      shift
      ;;
  esac
done
((${#POS[@]} <= 2)) || die "too many arguments: want [SCENARIO] [N]"
SCENARIO=${POS[0]:-storm}
N=${POS[1]:-}
case $SCENARIO in
  storm | ceiling | history | idle | pool) ;;
  *) die "unknown scenario '$SCENARIO': want storm, ceiling, history, idle or pool" ;;
esac
[[ -z $N || $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive whole number, not '$N'"
if [[ -n $BASELINE && ( $SCENARIO == ceiling || $SCENARIO == pool ) ]]; then
  die "the $SCENARIO scenario runs no billflow worker: a baseline changes nothing (pool compares its two patterns in one run)"
fi
command -v go >/dev/null || die "Go is not installed (billflow needs Go 1.26: https://go.dev/dl/)"
local_stack_env

WORK=""
BASE_TREE=""
BASE_COMMIT=""
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
      rm -rf "$WORK/pg/pgdata" "$WORK/temporal"
      printf 'server logs kept in %s/logs\n' "$WORK" >&2
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

WORK=$(mktemp -d "${TMPDIR:-/tmp}/billflow-bench.XXXXXX")
chmod 755 "$WORK"
LOG_DIR=$WORK/logs
mkdir -p "$LOG_DIR"
RESULTS=$BILLFLOW_ROOT/bench/results
mkdir -p "$RESULTS"

run_step "build the worker and the bench" go build -o "$WORK/" ./worker ./bench/cmd/bench
if [[ -n $BASELINE ]]; then
  BASE_COMMIT=$(git rev-parse --verify --short=12 "$BASELINE^{commit}") || die "--baseline $BASELINE is not a commit"
  # An exported tree (git archive) rather than a git worktree: nothing is
  # added to the repository's metadata, and nothing is left if we are killed.
  BASE_TREE=$WORK/baseline
  mkdir -p "$BASE_TREE"
  run_step "export the baseline $BASELINE ($BASE_COMMIT)" bash -c 'set -o pipefail; git archive "$1" | tar -x -C "$2"' _ "$BASE_COMMIT" "$BASE_TREE"
  run_step "build the baseline worker" bash -c 'cd "$1" && go build -buildvcs=false -o "$2" ./worker' _ "$BASE_TREE" "$WORK/worker-baseline"
  # A worker from before payload encryption could not read what the bench's
  # client encrypts: compare both in plaintext then.
  if [[ ! -d $BASE_TREE/payloadcodec ]]; then
    log "the baseline predates payload encryption: both workers run with BILLFLOW_PAYLOAD_KEYS=plaintext"
    export BILLFLOW_PAYLOAD_KEYS=plaintext
  fi
fi

if [[ -n ${BILLFLOW_TEST_DATABASE_URL:-} || -n ${DATABASE_URL:-} ]]; then
  export BILLFLOW_TEST_DATABASE_URL=${BILLFLOW_TEST_DATABASE_URL:-$DATABASE_URL}
  log "using the PostgreSQL server from the environment (each scenario creates and drops its own database)"
else
  # pg_stat_statements counts the idle scenario's statements; loading it
  # needs a server start option.
  PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements" pg_up "$WORK/pg" --ephemeral
  export BILLFLOW_TEST_DATABASE_URL=$PG_ADMIN_URL
fi
if [[ -n ${TEMPORAL_ADDRESS:-} ]]; then
  log "using the Temporal server at $TEMPORAL_ADDRESS from the environment"
else
  mkdir -p "$WORK/temporal"
  temporal_up "$WORK/temporal" --headless --db-file "$WORK/temporal/temporal.db"
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
args=("${EXTRA[@]}" "$SCENARIO")
[[ -n $N ]] && args+=("$N")
rc=0
if [[ -z $BASELINE ]]; then
  "$WORK/bench" -worker "$WORK/worker" -label current "${args[@]}" || rc=$?
  exit "$rc"
fi
cur=$RESULTS/$stamp-$SCENARIO${N:+-$N}-current.json
base=$RESULTS/$stamp-$SCENARIO${N:+-$N}-baseline-$BASE_COMMIT.json
"$WORK/bench" -worker "$WORK/worker" -label current -out "$cur" "${args[@]}" || rc=$?
"$WORK/bench" -worker "$WORK/worker-baseline" -label "baseline $BASE_COMMIT" -commit "$BASE_COMMIT" \
  -root "$BASE_TREE" -results "$RESULTS" -out "$base" "${args[@]}" || rc=$?
if [[ -f $cur && -f $base ]]; then
  printf '\n'
  "$WORK/bench" compare "$cur" "$base"
fi
exit "$rc"
