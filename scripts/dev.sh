#!/usr/bin/env bash
#
# THE run command: the whole engine on this machine, with demo data.
#
# Starts (all on 127.0.0.1, free ports, printed at the end):
#   - PostgreSQL: a private cluster in .data/pg, kept between runs
#     (or the database in DATABASE_URL, if set: then no cluster is started)
#   - the Temporal dev server with its Web UI, state in .data/temporal.db,
#     billflow's search attributes registered
#   - the sandbox rails (sandbox/cmd/*): a Nostr relay, a Stripe API
#     stand-in, a Lightning node (LND's gRPC API) and an NWC wallet service,
#     logs in .data/logs/sandbox-*.log
#   - the billflow worker (.bin/worker), log in .data/logs/worker.log, with
#     its payment rails pointed at the sandboxes: NWC and Lightning (the
#     sandbox node, BILLFLOW_RATES=usd=2000000 msat per dollar), cards (the
#     Stripe stand-in) and DMs (a robot key kept in .data/robot.key, the
#     sandbox relay)
#   - the billflow api (HTTP ingress for Stripe's webhooks)
# then seeds a demo tenant and three payment-demo tenants (NWC, card after an
# NWC failure, grace then suspension: scripts/seed-demo.sh) and runs until
# Ctrl-C, when it stops everything it started.
#
# .data/env exports every variable the stack runs with (write_env below): the
# worker and the api are started from it, so it cannot leave one out. Source
# it to use the starter CLI, the temporal CLI or curl against the stack.
#
# The collection schedule is shortened so a whole dunning cycle plays out in
# minutes (production defaults are days). Each can be overridden from the
# environment before starting:
#   BILLFLOW_GRACE_WINDOW=3m         grace window, then suspension
#   BILLFLOW_DUNNING=1m,2m,4m        automatic retries after the first failure
#   BILLFLOW_RECONCILE=30s,1m,2m     reconciliation checks,
#   BILLFLOW_RECONCILE_EVERY=5m      then every 5 minutes
#   BILLFLOW_NWC_TIMEOUT=15s         bound on one NWC payment
#   BILLFLOW_RATES=usd=2000000       msat per major unit
#   BILLFLOW_APP_URL=http://localhost:3000   payment page linked in DMs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh
# shellcheck source-path=SCRIPTDIR/..
source scripts/stack.sh

DATA=$BILLFLOW_ROOT/.data
LOG_DIR=$DATA/logs
ENV_FILE=$DATA/env
WORKER_PIDFILE=$DATA/worker.pid
WORKER_PID=""
SANDBOX_PIDS=()

command -v go >/dev/null || die "Go is not installed (billflow needs Go 1.26: https://go.dev/dl/)"
mkdir -p "$LOG_DIR"

# Two dev stacks in one checkout would share .data and stop each other's
# servers as stale. The lock dies with this process (even on SIGKILL), which
# is what lets the next run treat leftover servers as stale.
exec 9>"$DATA/dev.lock"
flock -n 9 || die "another scripts/dev.sh is already running in this checkout (stop it with Ctrl-C)"

# shellcheck disable=SC2317 # only called by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  trap - INT TERM HUP
  printf '\n' >&2
  log "stopping the dev stack"
  # The env file describes a running stack; without one it would mislead.
  rm -f "$ENV_FILE"
  # Worker first, so it does not log errors about a vanished server.
  if [[ -n $WORKER_PID ]]; then
    stop_pid "$WORKER_PID" "the worker" 20
    rm -f "$WORKER_PIDFILE"
  fi
  local pid
  for pid in "${SANDBOX_PIDS[@]}"; do
    stop_pid "$pid" "a sandbox" 10
  done
  temporal_down
  pg_down
  log "stopped (data kept in .data/; delete it for a fresh start)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The stack is local: TLS or API-key settings for a remote Temporal in the
# caller's shell must not apply to it.
local_stack_env

# Build first: a compile error should show before any server starts.
ensure_temporal_cli
bash scripts/build.sh

# A worker from an earlier run that was killed hard would still be polling.
stop_stale "$WORKER_PIDFILE" "$BIN_DIR/worker" "a billflow worker"

if [[ -n ${DATABASE_URL:-} ]]; then
  log "using DATABASE_URL from the environment (no local PostgreSQL started)"
else
  pg_up "$DATA/pg"
fi
stack_codec
temporal_up "$DATA" --db-file "$DATA/temporal.db" --ui-codec-endpoint "$CODEC_UI_ENDPOINT"

stack_secret_key
stack_sandboxes_up
write_env "$ENV_FILE"

log "starting the worker (log: .data/logs/worker.log)"
log "worker schedule: grace window $BILLFLOW_GRACE_WINDOW, dunning $BILLFLOW_DUNNING, reconcile $BILLFLOW_RECONCILE then every $BILLFLOW_RECONCILE_EVERY, NWC timeout $BILLFLOW_NWC_TIMEOUT"
stack_worker_up worker "$WORKER_HTTP_PORT"
WORKER_PID=${WORKER_PIDS[0]}
stack_wait_pollers ||
  warn "the worker does not poll task queue '$TASK_QUEUE' yet; seeding anyway (log: .data/logs/worker.log)"

stack_api_up

rm -f "$DATA/page-links"
if ! BILLFLOW_GRACE_WINDOW=$BILLFLOW_GRACE_WINDOW bash scripts/seed-demo.sh; then
  warn "seeding the demo data failed (see above and .data/logs/worker.log); the stack keeps running"
fi

ui=${TEMPORAL_UI_URL}/namespaces/${TEMPORAL_NAMESPACE}/workflows
cat <<EOF

billflow dev stack is running.

  Temporal Web UI  $ui
  Temporal gRPC    $TEMPORAL_ADDRESS  (namespace $TEMPORAL_NAMESPACE, task queue $TASK_QUEUE)
  PostgreSQL       $DATABASE_URL
  Nostr relay      ws://127.0.0.1:$RELAY_PORT   (sandbox)
  billflow api     http://127.0.0.1:$API_PORT   (Stripe webhooks + application endpoints; token in .data/api.token;
                   /metrics and /healthz)
  worker metrics   http://127.0.0.1:$WORKER_HTTP_PORT/metrics   (and /healthz)
  Stripe API       http://127.0.0.1:$STRIPE_PORT   (sandbox; delivers webhooks to the api)
  Lightning (LND)  127.0.0.1:$LN_GRPC_PORT   (sandbox; pay an invoice: .bin/lnnode pay --dir .data/lnnode BOLT11)
  NWC wallet       connection URL in .data/nwcwallet/connection.url   (sandbox)
  Logs             .data/logs/worker.log  .data/logs/temporal.log  .data/logs/sandbox-*.log
  Demo tenant      $DEMO_TENANT  (2-minute billing periods)
  Payment demos    three tenants paying by NWC, by card after an NWC failure, or
                   not at all (grace, then suspension): listed by the seed above
  Demo schedules   grace window $BILLFLOW_GRACE_WINDOW, dunning $BILLFLOW_DUNNING, reconcile $BILLFLOW_RECONCILE
                   then every $BILLFLOW_RECONCILE_EVERY, NWC timeout $BILLFLOW_NWC_TIMEOUT, rates $BILLFLOW_RATES
                   (override: BILLFLOW_GRACE_WINDOW=... scripts/dev.sh; see its header)

Try, in another terminal in $BILLFLOW_ROOT:

  source .data/env
  .bin/starter tenant list
  .bin/starter tenant show --tenant $DEMO_TENANT
  .bin/starter renew --tenant $DEMO_TENANT
  .bin/starter invoice list
  .bin/starter invoice show --invoice ID
  .bin/starter tenant grace --tenant TENANT
  .bin/temporal workflow list
  .bin/temporal workflow show -w tenant/$DEMO_TENANT   # payloads decoded through the api's /codecs

$(cat "$DATA/page-links" 2>/dev/null)

Press Ctrl-C to stop everything.
EOF

# Run until Ctrl-C (the trap stops everything) or until a process we depend
# on dies, which is then reported instead of leaving a half-dead stack.
wait -n "$WORKER_PID" "$TEMPORAL_PID" || true
if ! kill -0 "$WORKER_PID" 2>/dev/null; then
  tail -n 30 "$LOG_DIR/worker.log" >&2
  die "the worker exited (log: .data/logs/worker.log)"
fi
tail -n 30 "$LOG_DIR/temporal.log" >&2
die "the Temporal dev server exited (log: .data/logs/temporal.log)"
