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
temporal_up "$DATA" --db-file "$DATA/temporal.db"

# The key that encrypts secrets at rest (NWC URLs). Generated once and kept,
# because the data in .data/pg is only readable with the key that wrote it.
if [[ ! -s $DATA/secret.key ]]; then
  (umask 077 && od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' >"$DATA/secret.key")
  log "generated .data/secret.key"
fi
chmod 600 "$DATA/secret.key"
if [[ -n ${BILLFLOW_SECRET_KEY:-} && $BILLFLOW_SECRET_KEY != "$(<"$DATA/secret.key")" ]]; then
  warn "ignoring BILLFLOW_SECRET_KEY from the environment: the dev stack's data is encrypted with .data/secret.key"
fi
BILLFLOW_SECRET_KEY=$(<"$DATA/secret.key")
export BILLFLOW_SECRET_KEY
export BILLFLOW_PLANS=${BILLFLOW_PLANS:-$BILLFLOW_ROOT/config/plans.json}
export BILLFLOW_SERVICES=${BILLFLOW_SERVICES:-$BILLFLOW_ROOT/config/services.json}
[[ -f $BILLFLOW_PLANS ]] || warn "plan catalog $BILLFLOW_PLANS does not exist"
TASK_QUEUE=${BILLFLOW_TASK_QUEUE:-billflow}

# write_env FILE: every variable the dev stack runs with, as exports. The
# worker and the api are started by sourcing it, and `source .data/env` gives
# a shell the same settings. Secrets stay in their 0600 files under .data;
# the env file only reads them when it is sourced, so it names no secret.
# Needs DATA, TASK_QUEUE, API_PORT, WORKER_HTTP_PORT, RELAY_PORT, STRIPE_PORT,
# LNNODE (the node's settings) and the schedule variables set.
write_env() {
  (
    umask 077
    {
      echo "# Written by scripts/dev.sh while the dev stack runs; removed when it stops."
      echo "# Use: source .data/env"
      printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
      printf 'export TEMPORAL_ADDRESS=%q\n' "$TEMPORAL_ADDRESS"
      printf 'export TEMPORAL_NAMESPACE=%q\n' "$TEMPORAL_NAMESPACE"
      printf 'export TEMPORAL_UI_URL=%q\n' "$TEMPORAL_UI_URL"
      printf 'export BILLFLOW_PLANS=%q\n' "$BILLFLOW_PLANS"
      printf 'export BILLFLOW_SERVICES=%q\n' "$BILLFLOW_SERVICES"
      printf 'export BILLFLOW_TASK_QUEUE=%q\n' "$TASK_QUEUE"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_SECRET_KEY="$(cat %q)"\n' "$DATA/secret.key"
      # The worker: its metrics and health, and its rails (the sandboxes).
      printf 'export BILLFLOW_WORKER_HTTP_ADDR=%q\n' "127.0.0.1:$WORKER_HTTP_PORT"
      printf 'export BILLFLOW_LND_ADDR=%q\n' "${LNNODE[LNNODE_GRPC_ADDR]}"
      printf 'export BILLFLOW_LND_TLS_CERT=%q\n' "${LNNODE[LNNODE_TLS_CERT]}"
      printf 'export BILLFLOW_LND_MACAROON=%q\n' "${LNNODE[LNNODE_MACAROON]}"
      printf 'export BILLFLOW_LND_PAYOUT_MACAROON=%q\n' "${LNNODE[LNNODE_PAYOUT_MACAROON]}"
      printf 'export BILLFLOW_LND_NETWORK=%q\n' "${LNNODE[LNNODE_NETWORK]}"
      printf 'export BILLFLOW_LND_PUBKEY=%q\n' "${LNNODE[LNNODE_PUBKEY]}"
      printf 'export BILLFLOW_RATES=%q\n' "$BILLFLOW_RATES"
      printf 'export BILLFLOW_APP_URL=%q\n' "$BILLFLOW_APP_URL"
      printf 'export BILLFLOW_STRIPE_API_URL=%q\n' "http://127.0.0.1:$STRIPE_PORT"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_STRIPE_API_KEY="sk_test_$(cat %q)"\n' "$DATA/stripe-api.key"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_ROBOT_KEY="$(cat %q)"\n' "$DATA/robot.key"
      printf 'export BILLFLOW_NOSTR_RELAYS=%q\n' "ws://127.0.0.1:$RELAY_PORT"
      # The demo collection schedule (see the header).
      printf 'export BILLFLOW_GRACE_WINDOW=%q\n' "$BILLFLOW_GRACE_WINDOW"
      printf 'export BILLFLOW_DUNNING=%q\n' "$BILLFLOW_DUNNING"
      printf 'export BILLFLOW_RECONCILE=%q\n' "$BILLFLOW_RECONCILE"
      printf 'export BILLFLOW_RECONCILE_EVERY=%q\n' "$BILLFLOW_RECONCILE_EVERY"
      printf 'export BILLFLOW_NWC_TIMEOUT=%q\n' "$BILLFLOW_NWC_TIMEOUT"
      # The api: where it listens, its token and Stripe's webhook signing
      # secret (the Stripe sandbox signs its deliveries with it).
      printf 'export BILLFLOW_API_ADDR=%q\n' "127.0.0.1:$API_PORT"
      printf 'export BILLFLOW_API_URL=%q\n' "http://127.0.0.1:$API_PORT"
      # The api's hosted invoice and account pages (links in DMs and events).
      printf 'export BILLFLOW_PUBLIC_URL=%q\n' "http://127.0.0.1:$API_PORT"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_API_TOKEN="$(cat %q)"\n' "$DATA/api.token"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_STRIPE_WEBHOOK_SECRET="whsec_$(cat %q)"\n' "$DATA/stripe-webhook.key"
      # LNNODE_* (engine's node: address, cert, macaroon, pay URL) and NWC_*
      # (the sandbox wallet; its connection URLs stay in a 0600 file, never here).
      cat "$DATA/lnnode/lnnode.env" "$DATA/nwcwallet/nwcwallet.env"
    } >"$1"
  )
}

# sandbox_up NAME READY_CHECK CMD...: starts one sandbox rail in the
# background and waits until READY_CHECK (a shell command) succeeds.
sandbox_up() {
  local name=$1 ready=$2 i
  shift 2
  setsid "$@" >>"$LOG_DIR/sandbox-$name.log" 2>&1 9>&- &
  SANDBOX_PIDS+=("$!")
  for ((i = 0; i < 150; i++)); do
    eval "$ready" && return 0
    kill -0 "${SANDBOX_PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$LOG_DIR/sandbox-$name.log" >&2
  die "the $name sandbox did not start (log: .data/logs/sandbox-$name.log)"
}

# dev_secret FILE [BYTES]: a random hex secret of BYTES bytes (default 24)
# generated once into .data, readable by its owner only; prints it.
dev_secret() {
  [[ -s $1 ]] || (umask 077 && od -An -vtx1 -N"${2:-24}" /dev/urandom | tr -d ' \n' >"$1")
  chmod 600 "$1"
  cat "$1"
}

run_step "build the sandbox rails and the api" go build -o "$BIN_DIR/" ./sandbox/cmd/relay ./sandbox/cmd/stripe \
  ./sandbox/cmd/lnnode ./sandbox/cmd/nwcwallet ./sandbox/cmd/meterclient ./api/cmd/api
# The api (HTTP ingress) receives the Stripe sandbox's webhooks; its port is
# chosen now so the sandbox can be told where to deliver.
free_port API_PORT
# The relay keeps its port from one run to the next when it is free: the NWC
# connection URLs the wallet minted (connection.url) and those stored for
# tenants name it.
RELAY_PORT=""
if [[ -s $DATA/relay.port ]]; then
  RELAY_PORT=$(<"$DATA/relay.port")
  if [[ ! $RELAY_PORT =~ ^[0-9]+$ || $RELAY_PORT == "$API_PORT" ]] || port_in_use "$RELAY_PORT"; then
    RELAY_PORT=""
  fi
fi
[[ -n $RELAY_PORT ]] || free_port RELAY_PORT
echo "$RELAY_PORT" >"$DATA/relay.port"
sandbox_up relay "port_in_use $RELAY_PORT" "$BIN_DIR/relay" --addr "127.0.0.1:$RELAY_PORT"
free_port STRIPE_PORT
STRIPE_SANDBOX_API_KEY=sk_test_$(dev_secret "$DATA/stripe-api.key")
STRIPE_SANDBOX_WEBHOOK_SECRET=whsec_$(dev_secret "$DATA/stripe-webhook.key")
export STRIPE_SANDBOX_API_KEY STRIPE_SANDBOX_WEBHOOK_SECRET
sandbox_up stripe "port_in_use $STRIPE_PORT" "$BIN_DIR/stripe" --addr "127.0.0.1:$STRIPE_PORT" --demo \
  --webhook-url "http://127.0.0.1:$API_PORT/webhooks/stripe"
# The Lightning node keeps its key, macaroons and invoices in .data/lnnode, so
# settle indexes stay valid across runs; the wallet pays through it. The
# wallet's balance (reset at every start) covers hours of 2-minute invoices.
free_port LN_GRPC_PORT
free_port LN_HTTP_PORT
rm -f "$DATA/lnnode/lnnode.env" "$DATA/nwcwallet/nwcwallet.env"
sandbox_up lnnode "[[ -s $DATA/lnnode/lnnode.env ]]" "$BIN_DIR/lnnode" serve --dir "$DATA/lnnode" \
  --grpc-addr "127.0.0.1:$LN_GRPC_PORT" --http-addr "127.0.0.1:$LN_HTTP_PORT"
sandbox_up nwcwallet "[[ -s $DATA/nwcwallet/nwcwallet.env ]]" "$BIN_DIR/nwcwallet" --dir "$DATA/nwcwallet" \
  --relay "ws://127.0.0.1:$RELAY_PORT" --lnnode-dir "$DATA/lnnode" --balance-msat 1000000000
log "sandboxes: Nostr relay ws://127.0.0.1:$RELAY_PORT, Stripe http://127.0.0.1:$STRIPE_PORT, Lightning 127.0.0.1:$LN_GRPC_PORT, NWC wallet"

# The worker's payment rails are the sandboxes above. The schedule is the
# demo one (see the header); the operator's environment overrides it.
BILLFLOW_RATES=${BILLFLOW_RATES:-usd=2000000}
BILLFLOW_APP_URL=${BILLFLOW_APP_URL:-http://localhost:3000}
BILLFLOW_GRACE_WINDOW=${BILLFLOW_GRACE_WINDOW:-3m}
BILLFLOW_DUNNING=${BILLFLOW_DUNNING:-1m,2m,4m}
BILLFLOW_RECONCILE=${BILLFLOW_RECONCILE:-30s,1m,2m}
BILLFLOW_RECONCILE_EVERY=${BILLFLOW_RECONCILE_EVERY:-5m}
BILLFLOW_NWC_TIMEOUT=${BILLFLOW_NWC_TIMEOUT:-15s}
# The DM robot's Nostr secret key: 32 random bytes, generated once; and the
# api's bearer token.
dev_secret "$DATA/robot.key" 32 >/dev/null
dev_secret "$DATA/api.token" >/dev/null
# LNNODE_* as the node wrote them (KEY=VALUE lines), read without sourcing.
declare -A LNNODE=()
while IFS='=' read -r key value; do
  [[ $key == LNNODE_* ]] && LNNODE[$key]=$value
done <"$DATA/lnnode/lnnode.env"
for key in LNNODE_GRPC_ADDR LNNODE_TLS_CERT LNNODE_MACAROON LNNODE_PAYOUT_MACAROON LNNODE_NETWORK LNNODE_PUBKEY; do
  [[ -n ${LNNODE[$key]:-} ]] || die "$key is missing from .data/lnnode/lnnode.env"
done
# The worker's /metrics and /healthz.
free_port WORKER_HTTP_PORT
write_env "$ENV_FILE"

log "starting the worker (log: .data/logs/worker.log)"
log "worker schedule: grace window $BILLFLOW_GRACE_WINDOW, dunning $BILLFLOW_DUNNING, reconcile $BILLFLOW_RECONCILE then every $BILLFLOW_RECONCILE_EVERY, NWC timeout $BILLFLOW_NWC_TIMEOUT"
# setsid: Ctrl-C reaches only this script, which stops the worker before the
# servers it depends on. The worker runs with exactly what .data/env exports
# (secrets are read from their files there, never passed as arguments), and
# exec keeps its pid the worker's.
(
  # shellcheck disable=SC1090 # written just above
  source "$ENV_FILE"
  exec setsid "$BIN_DIR/worker" >>"$LOG_DIR/worker.log" 2>&1 9>&-
) &
WORKER_PID=$!
echo "$WORKER_PID" >"$WORKER_PIDFILE"

# The worker is ready once it polls its task queue; the seed's workflows would
# otherwise just wait for it, but a worker that crashes at start (bad config,
# unreachable database) is better reported now.
ready=0
for ((i = 0; i < 120; i++)); do
  if ! kill -0 "$WORKER_PID" 2>/dev/null; then
    tail -n 30 "$LOG_DIR/worker.log" >&2
    die "the worker exited during start-up (log: .data/logs/worker.log)"
  fi
  if "$TEMPORAL_BIN" task-queue describe --disable-config-file --task-queue "$TASK_QUEUE" -o json 2>/dev/null |
    grep -q '"identity"'; then
    ready=1
    break
  fi
  sleep 0.5
done
((ready)) || warn "the worker does not poll task queue '$TASK_QUEUE' yet; seeding anyway (log: .data/logs/worker.log)"

log "starting the api (log: .data/logs/sandbox-api.log)"
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's
sandbox_up api "port_in_use $API_PORT" bash -c 'source "$1" && exec "$2"' api "$ENV_FILE" "$BIN_DIR/api"

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
