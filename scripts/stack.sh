# shellcheck shell=bash
#
# The billflow processes of a local stack, shared by scripts/dev.sh (one
# worker on the Temporal dev server) and scripts/cluster.sh (two worker
# replicas on a Temporal server on PostgreSQL): the secret key, the sandbox
# rails, the env file, the worker and the api. Source it after lib.sh; it only
# defines functions. They use these globals, set by the caller:
#   DATA      the stack's state directory (.data for dev.sh)
#   LOG_DIR   where the processes log
#   ENV_FILE  the env file write_env writes and the processes start from
# and set API_PORT, RELAY_PORT, STRIPE_PORT, LN_GRPC_PORT, LN_HTTP_PORT,
# WORKER_HTTP_PORT, METER_PORT, LNNODE, TASK_QUEUE, the schedule variables, SANDBOX_PIDS
# and WORKER_PIDS.

SANDBOX_PIDS=()
WORKER_PIDS=()

# stack_codec: the payload keys and the codec endpoint, before the Temporal
# Web UI starts (it is started pointed at the endpoint). Every payload the
# stack writes to Temporal is encrypted (package payloadcodec) with the keys
# in $DATA/payload.keys, "id:base64key[,...]", generated once and kept:
# histories are only readable with the keys that wrote them. Rotate by
# putting a new key first (the old ones keep decrypting). The api serves the
# codec at /codecs/ to the Web UI, which can send no header: its endpoint
# carries $DATA/codec.token in the path. Sets API_PORT (the api's port,
# chosen now), BILLFLOW_PAYLOAD_KEYS and CODEC_UI_ENDPOINT.
stack_codec() {
  if [[ ! -s $DATA/payload.keys ]]; then
    (umask 077 && printf 'k%s:%s' "$(date -u +%Y%m%d)" "$(head -c 32 /dev/urandom | base64 -w0)" >"$DATA/payload.keys")
    log "generated ${DATA#"$BILLFLOW_ROOT"/}/payload.keys (the key of Temporal payloads)"
  fi
  chmod 600 "$DATA/payload.keys"
  BILLFLOW_PAYLOAD_KEYS=$(<"$DATA/payload.keys")
  export BILLFLOW_PAYLOAD_KEYS
  [[ -n ${API_PORT:-} ]] || free_port API_PORT
  CODEC_UI_ENDPOINT=http://127.0.0.1:$API_PORT/codecs/$(dev_secret "$DATA/codec.token")
}

# stack_secret_key: BILLFLOW_SECRET_KEY, BILLFLOW_PLANS, BILLFLOW_SERVICES, BILLFLOW_POOL and TASK_QUEUE.
stack_secret_key() {
  # The key that encrypts secrets at rest (NWC URLs). Generated once and kept,
  # because the data in .data/pg is only readable with the key that wrote it.
  if [[ ! -s $DATA/secret.key ]]; then
    (umask 077 && od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' >"$DATA/secret.key")
    log "generated ${DATA#"$BILLFLOW_ROOT"/}/secret.key"
  fi
  chmod 600 "$DATA/secret.key"
  if [[ -n ${BILLFLOW_SECRET_KEY:-} && $BILLFLOW_SECRET_KEY != "$(<"$DATA/secret.key")" ]]; then
    warn "ignoring BILLFLOW_SECRET_KEY from the environment: the stack's data is encrypted with ${DATA#"$BILLFLOW_ROOT"/}/secret.key"
  fi
  BILLFLOW_SECRET_KEY=$(<"$DATA/secret.key")
  export BILLFLOW_SECRET_KEY
  export BILLFLOW_PLANS=${BILLFLOW_PLANS:-$BILLFLOW_ROOT/config/plans.json}
  export BILLFLOW_SERVICES=${BILLFLOW_SERVICES:-$BILLFLOW_ROOT/config/services.json}
  export BILLFLOW_POOL=${BILLFLOW_POOL:-$BILLFLOW_ROOT/config/pool.json}
  [[ -f $BILLFLOW_PLANS ]] || warn "plan catalog $BILLFLOW_PLANS does not exist"
  TASK_QUEUE=${BILLFLOW_TASK_QUEUE:-billflow}
}

# write_env FILE: every variable the dev stack runs with, as exports. The
# worker and the api are started by sourcing it, and `source .data/env` gives
# a shell the same settings. Secrets stay in their 0600 files under .data;
# the env file only reads them when it is sourced, so it names no secret.
# Needs DATA, TASK_QUEUE, API_PORT, WORKER_HTTP_PORT, RELAY_PORT, STRIPE_PORT, METER_PORT,
# LNNODE (the node's settings) and the schedule variables set.
write_env() {
  (
    umask 077
    {
      echo "# Written by scripts/${STACK_SCRIPT:-dev.sh} while the stack runs; removed when it stops."
      echo "# Use: source ${1#"${BILLFLOW_ROOT:-}"/}"
      printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
      printf 'export TEMPORAL_ADDRESS=%q\n' "$TEMPORAL_ADDRESS"
      printf 'export TEMPORAL_NAMESPACE=%q\n' "$TEMPORAL_NAMESPACE"
      printf 'export TEMPORAL_UI_URL=%q\n' "$TEMPORAL_UI_URL"
      printf 'export BILLFLOW_PLANS=%q\n' "$BILLFLOW_PLANS"
      printf 'export BILLFLOW_SERVICES=%q\n' "$BILLFLOW_SERVICES"
      printf 'export BILLFLOW_POOL=%q\n' "$BILLFLOW_POOL"
      printf 'export BILLFLOW_TASK_QUEUE=%q\n' "$TASK_QUEUE"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_SECRET_KEY="$(cat %q)"\n' "$DATA/secret.key"
      # Temporal payloads are encrypted with these keys (stack_codec); the
      # temporal CLI decodes them through the api's codec endpoint.
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_PAYLOAD_KEYS="$(cat %q)"\n' "$DATA/payload.keys"
      printf 'export TEMPORAL_CODEC_ENDPOINT=%q\n' "http://127.0.0.1:$API_PORT/codecs"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export TEMPORAL_CODEC_AUTH="Bearer $(cat %q)"\n' "$DATA/codec.token"
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
      # The codec endpoint's token and the Web UI's origins (its CORS).
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_CODEC_TOKEN="$(cat %q)"\n' "$DATA/codec.token"
      printf 'export BILLFLOW_CODEC_ORIGINS=%q\n' "${TEMPORAL_UI_URL:+$TEMPORAL_UI_URL,${TEMPORAL_UI_URL/127.0.0.1/localhost}}"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_STRIPE_WEBHOOK_SECRET="whsec_$(cat %q)"\n' "$DATA/stripe-webhook.key"
      # Outbound events go to the sandbox metered client (stack_meterclient_up).
      printf 'export BILLFLOW_WEBHOOK_URL=%q\n' "http://127.0.0.1:$METER_PORT/"
      # shellcheck disable=SC2016 # expanded when the file is sourced
      printf 'export BILLFLOW_WEBHOOK_SECRET="$(cat %q)"\n' "$DATA/webhook.key"
      # LNNODE_* (engine's node: address, cert, macaroon, pay URL), NWC_*
      # (the sandbox wallet; its connection URLs stay in a 0600 file, never
      # here) and METERCLIENT_* (the metered client's URL and payer key).
      cat "$DATA/lnnode/lnnode.env" "$DATA/nwcwallet/nwcwallet.env" "$DATA/meterclient/meterclient.env"
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
  # The pid file lets a process be restarted by pid (the chaos test does;
  # scripts/cluster.sh stops whatever pid the file names at the end).
  echo "$!" >"$DATA/sandbox-$name.pid"
  for ((i = 0; i < 150; i++)); do
    eval "$ready" && return 0
    kill -0 "${SANDBOX_PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$LOG_DIR/sandbox-$name.log" >&2
  die "the $name sandbox did not start (log: $LOG_DIR/sandbox-$name.log)"
}

# dev_secret FILE [BYTES]: a random hex secret of BYTES bytes (default 24)
# generated once into .data, readable by its owner only; prints it.
dev_secret() {
  [[ -s $1 ]] || (umask 077 && od -An -vtx1 -N"${2:-24}" /dev/urandom | tr -d ' \n' >"$1")
  chmod 600 "$1"
  cat "$1"
}

# stack_sandboxes_up: builds the sandbox rails and the api, starts the
# sandboxes, and sets the worker settings that name them.
stack_sandboxes_up() {
  run_step "build the sandbox rails and the api" go build -o "$BIN_DIR/" ./sandbox/cmd/relay ./sandbox/cmd/stripe \
    ./sandbox/cmd/lnnode ./sandbox/cmd/nwcwallet ./sandbox/cmd/meterclient ./api/cmd/api
  # The api (HTTP ingress) receives the Stripe sandbox's webhooks; its port is
  # chosen now (or was, by stack_codec) so the sandbox can be told where to deliver.
  [[ -n ${API_PORT:-} ]] || free_port API_PORT
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
  # Its state (charges, events, idempotency keys, webhooks being retried) is
  # kept in .data, so it can be restarted; failed webhooks are retried on
  # Stripe's back-off schedule, scaled down (STRIPE_SANDBOX_WEBHOOK_TIME_SCALE);
  # pm_sandbox_processing charges succeed STRIPE_SANDBOX_SETTLE_PROCESSING
  # after they are made, told by webhook only.
  sandbox_up stripe "port_in_use $STRIPE_PORT" "$BIN_DIR/stripe" --addr "127.0.0.1:$STRIPE_PORT" --demo \
    --webhook-url "http://127.0.0.1:$API_PORT/webhooks/stripe" --state "$DATA/stripe-state.json" \
    --webhook-time-scale "${STRIPE_SANDBOX_WEBHOOK_TIME_SCALE:-0.01}" \
    --settle-processing-after "${STRIPE_SANDBOX_SETTLE_PROCESSING:-20s}"
  # The Lightning node keeps its key, macaroons and invoices in .data/lnnode, so
  # settle indexes stay valid across runs; the wallet pays through it. The
  # wallet's balance (reset at every start) covers hours of 2-minute invoices.
  free_port LN_GRPC_PORT
  free_port LN_HTTP_PORT
  rm -f "$DATA/lnnode/lnnode.env" "$DATA/nwcwallet/nwcwallet.env"
  sandbox_up lnnode "[[ -s $DATA/lnnode/lnnode.env ]]" "$BIN_DIR/lnnode" serve --dir "$DATA/lnnode" \
    --grpc-addr "127.0.0.1:$LN_GRPC_PORT" --http-addr "127.0.0.1:$LN_HTTP_PORT"
  sandbox_up nwcwallet "[[ -s $DATA/nwcwallet/nwcwallet.env ]]" "$BIN_DIR/nwcwallet" --dir "$DATA/nwcwallet" \
    --relay "ws://127.0.0.1:$RELAY_PORT" --lnnode-dir "$DATA/lnnode" --balance-msat 1000000000 \
    --admin-addr 127.0.0.1:0
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
  declare -gA LNNODE=()
  while IFS='=' read -r key value; do
    [[ $key == LNNODE_* ]] && LNNODE[$key]=$value
  done <"$DATA/lnnode/lnnode.env"
  for key in LNNODE_GRPC_ADDR LNNODE_TLS_CERT LNNODE_MACAROON LNNODE_PAYOUT_MACAROON LNNODE_NETWORK LNNODE_PUBKEY; do
    [[ -n ${LNNODE[$key]:-} ]] || die "$key is missing from $DATA/lnnode/lnnode.env"
  done
  # The worker's /metrics and /healthz.
  free_port WORKER_HTTP_PORT
  stack_meterclient_up
}

# stack_meterclient_up: starts the sandbox metered client (the payer of the
# usage demo) as the application's webhook endpoint: the worker delivers
# every outbound event to it (BILLFLOW_WEBHOOK_URL, signed with
# .data/webhook.key); it co-signs the usage.sign_request receipts of its
# payer key (.data/meterclient/payer.key) through the api and acknowledges
# every other event. Needs API_PORT and .data/api.token; sets METER_PORT.
stack_meterclient_up() {
  dev_secret "$DATA/webhook.key" 32 >/dev/null
  free_port METER_PORT
  rm -f "$DATA/meterclient/meterclient.env"
  # Its secrets come from their files inside the child, never as arguments.
  # shellcheck disable=SC2016 # $1..$3 are the inner shell's
  sandbox_up meterclient "[[ -s $DATA/meterclient/meterclient.env ]]" bash -c \
    'BILLFLOW_WEBHOOK_SECRET=$(cat "$1") BILLFLOW_API_TOKEN=$(cat "$2") exec "$3" "${@:4}"' meterclient \
    "$DATA/webhook.key" "$DATA/api.token" "$BIN_DIR/meterclient" --dir "$DATA/meterclient" \
    --addr "127.0.0.1:$METER_PORT" --api-url "http://127.0.0.1:$API_PORT" --mode auto
  log "sandbox metered client: webhook http://127.0.0.1:$METER_PORT/ (sign outcomes: /outcomes), payer in .data/meterclient"
}

# stack_worker_up NAME HTTP_PORT: starts one worker replica from ENV_FILE,
# logging to LOG_DIR/NAME.log with its /metrics and /healthz on HTTP_PORT;
# its pid is appended to WORKER_PIDS (and written to DATA/NAME.pid).
stack_worker_up() {
  local name=$1 http_port=$2
  # setsid: Ctrl-C reaches only the script, which stops the workers before
  # the servers they depend on. The worker runs with exactly what the env
  # file exports (secrets are read from their files, never passed as
  # arguments), and exec keeps its pid the worker's.
  (
    # shellcheck disable=SC1090 # written by write_env
    source "$ENV_FILE"
    BILLFLOW_WORKER_HTTP_ADDR=127.0.0.1:$http_port exec setsid "$BIN_DIR/worker" >>"$LOG_DIR/$name.log" 2>&1 9>&-
  ) &
  WORKER_PIDS+=("$!")
  echo "$!" >"$DATA/$name.pid"
}

# stack_wait_pollers: waits until every worker in WORKER_PIDS polls
# TASK_QUEUE (false after a minute); dies when one exits meanwhile. A worker's
# identity is the SDK's default, "PID@HOST@", so the server's poller list
# names each process (pollers of an earlier run linger there for minutes and
# must not count). The seed's workflows would otherwise just wait for a
# worker, but one that crashes at start (bad config, unreachable database) is
# better reported now.
stack_wait_pollers() {
  local i pid ids missing
  for ((i = 0; i < 120; i++)); do
    for pid in "${WORKER_PIDS[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 30 "$LOG_DIR"/worker*.log >&2
        die "a worker exited during start-up (logs: $LOG_DIR/worker*.log)"
      fi
    done
    ids=$(stack_pollers)
    missing=0
    for pid in "${WORKER_PIDS[@]}"; do
      grep -q "^$pid@" <<<"$ids" || missing=1
    done
    ((missing)) || return 0
    sleep 0.5
  done
  return 1
}

# stack_pollers prints the identities polling TASK_QUEUE, one a line.
stack_pollers() {
  "$TEMPORAL_BIN" task-queue describe --disable-config-file --task-queue "$TASK_QUEUE" -o json 2>/dev/null |
    sed -n 's/.*"identity": *"\([^"]*\)".*/\1/p' | sort -u
}

# stack_api_up: starts the api from ENV_FILE on API_PORT.
stack_api_up() {
  log "starting the api (log: ${LOG_DIR#"$BILLFLOW_ROOT"/}/sandbox-api.log)"
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
  sandbox_up api "port_in_use $API_PORT" bash -c 'source "$1" && exec "$2"' api "$ENV_FILE" "$BIN_DIR/api"
}
