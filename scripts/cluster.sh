#!/usr/bin/env bash
#
# The cluster tier: billflow in its production shape on this machine, without
# Docker. The same system as docker-compose.yml (config/cluster_test.go checks
# that they agree), made of processes built from this repository:
#
#   - PostgreSQL: a private cluster in .data/cluster/pg holding billflow's
#     database and Temporal's two (temporal, temporal_visibility), created and
#     migrated with the server's SQL tool from the schema files shipped in the
#     server module (schema/postgresql/v12)
#   - the Temporal server 1.29.1 (.bin/temporal-server, pinned in
#     tools/temporal-server: the version the pinned CLI embeds), persistence
#     and visibility on PostgreSQL, configured by config/temporal/cluster.yaml,
#     the `default` namespace and billflow's search attributes registered
#   - the Temporal Web UI 2.42.1 (.bin/temporal-ui, tools/temporal-ui;
#     config/temporal/ui/cluster.yaml) against that server
#   - the sandbox rails, the api, and TWO worker replicas polling one task
#     queue, with the dev stack's demo data (scripts/stack.sh, seed-demo.sh)
#
# Everything listens on free ports of 127.0.0.1, printed when ready.
#
#   scripts/cluster.sh            up in the foreground; Ctrl-C stops everything
#   scripts/cluster.sh --detach   up in the background; returns once ready
#   scripts/cluster.sh --down     stops a detached cluster tier
#   scripts/cluster.sh --smoke    up (without demo data), checks it (a tenant's
#                                 workflow in the server's visibility, two
#                                 worker pollers), down; non-zero on failure
#
# .data/cluster/env exports the stack's settings (source it for the starter
# CLI or the temporal CLI); .data/cluster/bench.env points scripts/bench.sh
# at this Temporal server and PostgreSQL:
#   env $(cat .data/cluster/bench.env) scripts/bench.sh storm 200
# State is kept in .data/cluster between runs; delete it for a fresh start.
# The demo schedule variables of scripts/dev.sh apply here too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh
# shellcheck source-path=SCRIPTDIR/..
source scripts/stack.sh

# What this script runs, named as docker-compose.yml names the same services
# (config/cluster_test.go reads these lines and checks the compose file against
# them; keep one assignment per line).
CLUSTER_SERVICES="postgres temporal-postgresql temporal-schema temporal temporal-setup temporal-ui worker api"
CLUSTER_WORKER_REPLICAS=2
CLUSTER_TEMPORAL_CONFIG=config/temporal
CLUSTER_TEMPORAL_ENV=cluster
CLUSTER_TEMPORAL_DATABASES="temporal temporal_visibility"
CLUSTER_TEMPORAL_DB_USER=temporal
CLUSTER_NAMESPACE=default
CLUSTER_NAMESPACE_RETENTION=72h

DATA=$BILLFLOW_ROOT/.data/cluster
LOG_DIR=$DATA/logs
ENV_FILE=$DATA/env
STACK_SCRIPT=cluster.sh
SUPERVISOR_PIDFILE=$DATA/cluster.pid
SERVER_BIN=$BIN_DIR/temporal-server
SQL_TOOL_BIN=$BIN_DIR/temporal-sql-tool
UI_BIN=$BIN_DIR/temporal-ui
SERVER_PID=""
UI_PID=""

MODE=foreground
case ${1:-} in
  "") ;;
  --detach) MODE=detach ;;
  --down) MODE=down ;;
  --smoke) MODE=smoke ;;
  --up-detached) MODE=child ;; # internal: the background half of --detach
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown option '$1': want --detach, --down, --smoke or nothing" ;;
esac
(($# <= 1)) || die "one option at most"
mkdir -p "$LOG_DIR"

# supervisor_pid prints the pid of a running cluster.sh of this checkout.
supervisor_pid() {
  local pid
  [[ -s $SUPERVISOR_PIDFILE ]] || return 1
  pid=$(<"$SUPERVISOR_PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'scripts/cluster.sh' || return 1
  echo "$pid"
}

if [[ $MODE == down ]]; then
  pid=$(supervisor_pid) || {
    log "no cluster tier is running in this checkout"
    exit 0
  }
  log "stopping the cluster tier (pid $pid)"
  kill -TERM "$pid"
  for ((i = 0; i < 900; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "the cluster tier (pid $pid) did not stop within 90s (log: $LOG_DIR/cluster.log)"
  log "stopped (data kept in .data/cluster; delete it for a fresh start)"
  exit 0
fi

if [[ $MODE == detach ]]; then
  pid=$(supervisor_pid) && die "a cluster tier is already running (pid $pid); stop it with scripts/cluster.sh --down"
  rm -f "$DATA/ready"
  : >"$LOG_DIR/cluster.log"
  start=$(now_ms)
  setsid bash "$BILLFLOW_ROOT/scripts/cluster.sh" --up-detached >>"$LOG_DIR/cluster.log" 2>&1 </dev/null &
  pid=$!
  log "starting the cluster tier in the background (pid $pid, log: .data/cluster/logs/cluster.log)"
  while [[ ! -f $DATA/ready ]]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$LOG_DIR/cluster.log" >&2
      die "the cluster tier failed to start (log: .data/cluster/logs/cluster.log)"
    fi
    sleep 0.5
  done
  cat "$DATA/banner"
  log "up in $(fmt_duration $(($(now_ms) - start))); stop it with: scripts/cluster.sh --down"
  exit 0
fi

command -v go >/dev/null || die "Go is not installed (billflow needs Go 1.26: https://go.dev/dl/)"
START_MS=$(now_ms)

# One cluster tier per checkout (the dev stack may run beside it: its state
# is .data, this one's .data/cluster). The lock dies with this process.
exec 9>"$DATA/cluster.lock"
flock -n 9 || die "another scripts/cluster.sh is already running in this checkout (stop it with --down or Ctrl-C)"
echo $$ >"$SUPERVISOR_PIDFILE"
rm -f "$DATA/ready"

# shellcheck disable=SC2317 # only called by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  trap - INT TERM HUP
  printf '\n' >&2
  log "stopping the cluster tier"
  rm -f "$ENV_FILE" "$DATA/bench.env" "$DATA/ready" "$DATA/banner"
  # Workers first, so they do not log errors about a vanished server. A
  # process restarted by pid (scripts/chaos.sh) is named by its pid file.
  local pid
  for pid in "${WORKER_PIDS[@]}" $(pidfile_pids "$DATA"/worker-*.pid); do
    stop_pid "$pid" "a worker" 20
  done
  rm -f "$DATA"/worker-*.pid
  for pid in "${SANDBOX_PIDS[@]}" $(pidfile_pids "$DATA"/sandbox-*.pid); do
    stop_pid "$pid" "a sandbox" 10
  done
  rm -f "$DATA"/sandbox-*.pid
  stop_pid "$UI_PID" "the Temporal Web UI" 10
  for pid in "$SERVER_PID" $(pidfile_pids "$DATA/temporal-server.pid"); do
    stop_pid "$pid" "the Temporal server" 30
  done
  rm -f "$DATA/temporal-server.pid" "$DATA/temporal-ui.pid" "$DATA/chaos.active"
  pg_down
  rm -f "$SUPERVISOR_PIDFILE"
  log "stopped (data kept in .data/cluster; delete it for a fresh start)"
  exit "$rc"
}
# pidfile_pids FILE...: the pids the files name that still run a program of
# .bin (a recycled pid is never hit).
pidfile_pids() {
  local f pid argv0
  for f in "$@"; do
    [[ -s $f ]] || continue
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || continue
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)
    [[ $argv0 == "$BIN_DIR"/* ]] && echo "$pid"
  done
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

local_stack_env

# ---------------------------------------------------------------------------
# Build (cached in .bin/; a compile error shows before any server starts)

ensure_cluster_tools() {
  _go_build_tool "$BILLFLOW_ROOT/tools/temporal-server" "$SERVER_BIN" go.temporal.io/server/cmd/server ||
    die "building the Temporal server failed (see the go output above)"
  _go_build_tool "$BILLFLOW_ROOT/tools/temporal-server" "$SQL_TOOL_BIN" go.temporal.io/server/cmd/tools/sql ||
    die "building the Temporal SQL tool failed (see the go output above)"
  _go_build_tool "$BILLFLOW_ROOT/tools/temporal-ui" "$UI_BIN" github.com/temporalio/ui-server/v2/cmd/server ||
    die "building the Temporal Web UI failed (see the go output above)"
}
ensure_temporal_cli
ensure_cluster_tools
bash scripts/build.sh

for ((i = 1; i <= CLUSTER_WORKER_REPLICAS; i++)); do
  stop_stale "$DATA/worker-$i.pid" "$BIN_DIR/worker" "a billflow worker"
done
stop_stale "$DATA/temporal-server.pid" "$SERVER_BIN" "a Temporal server"
stop_stale "$DATA/temporal-ui.pid" "$UI_BIN" "a Temporal Web UI"

# ---------------------------------------------------------------------------
# PostgreSQL: billflow's database and Temporal's, on one private cluster
# (docker-compose.yml runs two servers; one is enough on one machine).

unset DATABASE_URL
# pg_stat_statements: scripts/bench.sh's idle scenario counts statements
# with it when pointed at this server.
PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements" pg_up "$DATA/pg"

# The schema files ship in the server module, at the pinned version.
SCHEMA_DIR=$(cd "$BILLFLOW_ROOT/tools/temporal-server" && go mod download -json go.temporal.io/server |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $SCHEMA_DIR/schema/postgresql/v12/temporal ]] ||
  die "the Temporal schema files are missing (looked in '$SCHEMA_DIR/schema/postgresql/v12')"
SCHEMA_DIR=$SCHEMA_DIR/schema/postgresql/v12

# temporal_schema DB SCHEMA: creates DB (owned by the temporal role) and
# brings it to the newest schema version. Safe to re-run: setup-schema only
# on a database without a schema, update-schema is a no-op when current.
temporal_schema() {
  local db=$1 schema=$2
  local sql=("$SQL_TOOL_BIN" --plugin postgres12 --ep 127.0.0.1 -p "$PG_PORT" -u "$CLUSTER_TEMPORAL_DB_USER" --db "$db")
  if [[ $(_pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'") != 1 ]]; then
    "${sql[@]}" create-database >>"$LOG_DIR/temporal-sql-tool.log" 2>&1 ||
      die "creating database $db failed (log: $LOG_DIR/temporal-sql-tool.log)"
  fi
  if [[ $(_pg_psql -d "$db" -tAc "SELECT to_regclass('public.schema_version') IS NOT NULL") != t ]]; then
    "${sql[@]}" setup-schema -v 0.0 >>"$LOG_DIR/temporal-sql-tool.log" 2>&1 ||
      die "setting up the schema of $db failed (log: $LOG_DIR/temporal-sql-tool.log)"
  fi
  "${sql[@]}" update-schema -d "$SCHEMA_DIR/$schema/versioned" >>"$LOG_DIR/temporal-sql-tool.log" 2>&1 ||
    die "migrating $db failed (log: $LOG_DIR/temporal-sql-tool.log)"
  log "database $db at schema $(_pg_psql -d "$db" -tAc 'SELECT curr_version FROM schema_version')"
}
step_start=$(now_ms)
if [[ $(_pg_psql -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$CLUSTER_TEMPORAL_DB_USER'") != 1 ]]; then
  _pg_psql -d postgres -c "CREATE ROLE $CLUSTER_TEMPORAL_DB_USER LOGIN CREATEDB PASSWORD 'temporal'"
fi
read -r -a dbs <<<"$CLUSTER_TEMPORAL_DATABASES"
temporal_schema "${dbs[0]}" temporal
temporal_schema "${dbs[1]}" visibility
log "Temporal databases ready in $(fmt_duration $(($(now_ms) - step_start)))"

# ---------------------------------------------------------------------------
# The Temporal server, on free ports (every port in config/temporal/cluster.yaml)

temporal_server_up() {
  local attempt logfile=$LOG_DIR/temporal-server.log i
  step_start=$(now_ms)
  for attempt in 1 2 3; do
    free_port TEMPORAL_FRONTEND_PORT
    free_port TEMPORAL_FRONTEND_HTTP_PORT
    free_port TEMPORAL_FRONTEND_MEMBERSHIP_PORT
    free_port TEMPORAL_HISTORY_PORT
    free_port TEMPORAL_HISTORY_MEMBERSHIP_PORT
    free_port TEMPORAL_MATCHING_PORT
    free_port TEMPORAL_MATCHING_MEMBERSHIP_PORT
    free_port TEMPORAL_WORKER_PORT
    free_port TEMPORAL_WORKER_MEMBERSHIP_PORT
    (
      export TEMPORAL_FRONTEND_PORT TEMPORAL_FRONTEND_HTTP_PORT TEMPORAL_FRONTEND_MEMBERSHIP_PORT \
        TEMPORAL_HISTORY_PORT TEMPORAL_HISTORY_MEMBERSHIP_PORT TEMPORAL_MATCHING_PORT \
        TEMPORAL_MATCHING_MEMBERSHIP_PORT TEMPORAL_WORKER_PORT TEMPORAL_WORKER_MEMBERSHIP_PORT
      export TEMPORAL_DB_HOST=127.0.0.1 TEMPORAL_DB_PORT=$PG_PORT TEMPORAL_DB_USER=$CLUSTER_TEMPORAL_DB_USER
      export TEMPORAL_BIND_IP=127.0.0.1 TEMPORAL_BROADCAST_ADDRESS=127.0.0.1
      export TEMPORAL_DYNAMIC_CONFIG=$BILLFLOW_ROOT/$CLUSTER_TEMPORAL_CONFIG/dynamicconfig.yaml
      exec setsid "$SERVER_BIN" --root "$BILLFLOW_ROOT" --config "$CLUSTER_TEMPORAL_CONFIG" \
        --env "$CLUSTER_TEMPORAL_ENV" --allow-no-auth start >>"$logfile" 2>&1 9>&-
    ) &
    SERVER_PID=$!
    echo "$SERVER_PID" >"$DATA/temporal-server.pid"
    export TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_FRONTEND_PORT
    for ((i = 0; i < 600; i++)); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      if "$TEMPORAL_BIN" operator cluster health --disable-config-file --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -q SERVING; then
        log "Temporal server $("$SERVER_BIN" --version | awk '{print $NF}') up on $TEMPORAL_ADDRESS in $(fmt_duration $(($(now_ms) - step_start))) (log: $logfile)"
        return 0
      fi
      sleep 0.25
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$logfile" >&2
      die "the Temporal server did not become ready on $TEMPORAL_ADDRESS (log: $logfile)"
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    warn "the Temporal server exited during start-up (attempt $attempt; a port may have been taken)"
  done
  tail -n 20 "$logfile" >&2
  die "the Temporal server failed to start (log: $logfile)"
}
temporal_server_up
export TEMPORAL_NAMESPACE=$CLUSTER_NAMESPACE

# The namespace and the search attributes live in the databases: registered
# once, kept across runs. The frontend learns a new namespace from its cache
# (refreshed every few seconds), hence the wait.
tcli() { "$TEMPORAL_BIN" --disable-config-file --address "$TEMPORAL_ADDRESS" "$@"; }
step_start=$(now_ms)
if ! tcli operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  tcli operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$CLUSTER_NAMESPACE_RETENTION" >/dev/null ||
    die "registering the namespace $TEMPORAL_NAMESPACE failed"
fi
ok=0
for ((i = 0; i < 240; i++)); do
  if tcli workflow list --namespace "$TEMPORAL_NAMESPACE" --limit 1 >/dev/null 2>&1; then
    ok=1
    break
  fi
  sleep 0.25
done
((ok)) || die "the namespace $TEMPORAL_NAMESPACE does not serve requests (log: $LOG_DIR/temporal-server.log)"
existing=$(tcli operator search-attribute list --namespace "$TEMPORAL_NAMESPACE")
for sa in "${BILLFLOW_SEARCH_ATTRIBUTES[@]}"; do
  if ! grep -qw -- "${sa%%=*}" <<<"$existing"; then
    tcli operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "${sa%%=*}" --type "${sa#*=}" >/dev/null ||
      die "registering the search attribute $sa failed"
  fi
done
log "namespace $TEMPORAL_NAMESPACE and ${#BILLFLOW_SEARCH_ATTRIBUTES[@]} search attributes registered in $(fmt_duration $(($(now_ms) - step_start)))"

# ---------------------------------------------------------------------------
# The Web UI (the same ui-server the dev server embeds), against this server

free_port TEMPORAL_UI_PORT
# It decodes payloads through the api's codec endpoint (stack_codec).
stack_codec
(
  export TEMPORAL_UI_PORT TEMPORAL_UI_HOST=127.0.0.1
  export TEMPORAL_CORS_ORIGINS=http://127.0.0.1:$TEMPORAL_UI_PORT,http://localhost:$TEMPORAL_UI_PORT
  export TEMPORAL_CODEC_ENDPOINT=$CODEC_UI_ENDPOINT
  exec setsid "$UI_BIN" --root "$BILLFLOW_ROOT" --config "$CLUSTER_TEMPORAL_CONFIG/ui" \
    --env "$CLUSTER_TEMPORAL_ENV" start >>"$LOG_DIR/temporal-ui.log" 2>&1 9>&-
) &
UI_PID=$!
echo "$UI_PID" >"$DATA/temporal-ui.pid"
export TEMPORAL_UI_URL=http://127.0.0.1:$TEMPORAL_UI_PORT
for ((i = 0; i < 100; i++)); do
  port_in_use "$TEMPORAL_UI_PORT" && break
  kill -0 "$UI_PID" 2>/dev/null || break
  sleep 0.1
done
port_in_use "$TEMPORAL_UI_PORT" || {
  tail -n 20 "$LOG_DIR/temporal-ui.log" >&2
  die "the Temporal Web UI did not start (log: $LOG_DIR/temporal-ui.log)"
}

# ---------------------------------------------------------------------------
# billflow: sandboxes, env file, two worker replicas, the api

stack_secret_key
stack_sandboxes_up
write_env "$ENV_FILE"
# What scripts/bench.sh needs to run against this server (its scenarios make
# their own database, task queue and worker): env $(cat .data/cluster/bench.env) ...
printf 'TEMPORAL_ADDRESS=%s\nTEMPORAL_NAMESPACE=%s\nBILLFLOW_TEST_DATABASE_URL=%s\n' \
  "$TEMPORAL_ADDRESS" "$TEMPORAL_NAMESPACE" "$PG_ADMIN_URL" >"$DATA/bench.env"
log "starting $CLUSTER_WORKER_REPLICAS worker replicas on task queue $TASK_QUEUE (logs: .data/cluster/logs/worker-N.log)"
WORKER_HTTP_PORTS=("$WORKER_HTTP_PORT")
for ((i = 2; i <= CLUSTER_WORKER_REPLICAS; i++)); do
  free_port port
  WORKER_HTTP_PORTS+=("$port")
done
for ((i = 1; i <= CLUSTER_WORKER_REPLICAS; i++)); do
  stack_worker_up "worker-$i" "${WORKER_HTTP_PORTS[i - 1]}"
done
stack_wait_pollers ||
  die "the $CLUSTER_WORKER_REPLICAS workers do not all poll task queue $TASK_QUEUE after a minute (logs: $LOG_DIR/worker-*.log)"
stack_api_up

if [[ $MODE != smoke ]]; then
  rm -f "$DATA/page-links"
  if ! BILLFLOW_DATA_DIR=$DATA BILLFLOW_GRACE_WINDOW=$BILLFLOW_GRACE_WINDOW bash scripts/seed-demo.sh; then
    warn "seeding the demo data failed (see above and $LOG_DIR/worker-*.log); the cluster keeps running"
  fi
fi

metrics=""
for ((i = 1; i <= CLUSTER_WORKER_REPLICAS; i++)); do
  metrics+="http://127.0.0.1:${WORKER_HTTP_PORTS[i - 1]}/metrics  "
done
cat >"$DATA/banner" <<EOF

billflow cluster tier is running (up in $(fmt_duration $(($(now_ms) - START_MS)))).

  Temporal Web UI  $TEMPORAL_UI_URL/namespaces/$TEMPORAL_NAMESPACE/workflows
  Temporal gRPC    $TEMPORAL_ADDRESS  (server $("$SERVER_BIN" --version | awk '{print $NF}') on PostgreSQL;
                   namespace $TEMPORAL_NAMESPACE, task queue $TASK_QUEUE)
  PostgreSQL       127.0.0.1:$PG_PORT  databases billflow, temporal, temporal_visibility
                   ($DATABASE_URL)
  workers          $CLUSTER_WORKER_REPLICAS replicas; metrics $metrics
  billflow api     http://127.0.0.1:$API_PORT   (token in .data/cluster/api.token)
  Stripe API       http://127.0.0.1:$STRIPE_PORT   (sandbox)
  Nostr relay      ws://127.0.0.1:$RELAY_PORT   (sandbox)
  Lightning (LND)  127.0.0.1:$LN_GRPC_PORT   (sandbox)
  Logs             .data/cluster/logs/

$(cat "$DATA/page-links" 2>/dev/null)
Try, in another terminal in $BILLFLOW_ROOT:

  source .data/cluster/env
  .bin/starter tenant list
  .bin/temporal workflow list
  .bin/temporal task-queue describe --task-queue $TASK_QUEUE
  env \$(cat .data/cluster/bench.env) scripts/bench.sh storm 200   # the bench on this server

EOF

if [[ $MODE == smoke ]]; then
  # The tier works when a tenant created through the starter CLI has its
  # workflow in the server's visibility store (PostgreSQL) and both replicas
  # poll the task queue.
  # shellcheck disable=SC1090 # written above
  source "$ENV_FILE"
  # A new tenant each run: a random Nostr public key. Half of all 32-byte
  # strings are not the x coordinate of a curve point; the CLI refuses those
  # (exit 2, "not a point"), so draw again.
  created=0
  for ((i = 0; i < 40; i++)); do
    tenant=$(od -An -vtx1 -N32 /dev/urandom | tr -d ' \n')
    if out=$("$BIN_DIR/starter" tenant create --tenant "$tenant" --period 2m 2>&1); then
      created=1
      break
    fi
    grep -q 'not a point' <<<"$out" || die "smoke: creating tenant $tenant failed: $out"
  done
  ((created)) || die "smoke: no valid random tenant id in 40 draws"
  found=""
  for ((i = 0; i < 120; i++)); do
    found=$(tcli workflow list --namespace "$TEMPORAL_NAMESPACE" --query "BillingTenant = '$tenant'" 2>/dev/null | grep -c Running || true)
    ((found > 0)) && break
    sleep 0.5
  done
  ((found > 0)) || die "smoke: no running workflow with BillingTenant = $tenant in the server's visibility"
  tcli workflow list --namespace "$TEMPORAL_NAMESPACE" --query "BillingTenant = '$tenant'"
  # Both replicas of this run (their identities are PID@HOST@) poll the queue.
  pollers=$(stack_pollers)
  printf 'pollers on %s:\n%s\n' "$TASK_QUEUE" "$pollers"
  n=0
  for pid in "${WORKER_PIDS[@]}"; do
    grep -q "^$pid@" <<<"$pollers" && n=$((n + 1))
  done
  ((n == CLUSTER_WORKER_REPLICAS)) ||
    die "smoke: $n of this run's $CLUSTER_WORKER_REPLICAS workers (pids ${WORKER_PIDS[*]}) poll $TASK_QUEUE"
  log "smoke: OK (tenant $tenant has $found running workflow(s) in visibility; $n worker pollers; up in $(fmt_duration $(($(now_ms) - START_MS))))"
  exit 0
fi

cat "$DATA/banner"
touch "$DATA/ready"
if [[ $MODE == foreground ]]; then
  echo "Press Ctrl-C to stop everything."
fi

# Run until stopped (Ctrl-C, --down) or until a process we depend on dies,
# which is then reported instead of leaving a half-dead tier. The processes
# are those the pid files name: while .data/cluster/chaos.active exists, the
# chaos test (scripts/chaos.sh) kills and restarts them by pid, writing the
# new pid to the file, and an exit is its doing.
while :; do
  if [[ ! -e $DATA/chaos.active ]]; then
    if [[ -z $(pidfile_pids "$DATA/temporal-server.pid") ]]; then
      tail -n 30 "$LOG_DIR/temporal-server.log" >&2
      die "the Temporal server exited (log: .data/cluster/logs/temporal-server.log)"
    fi
    for ((i = 1; i <= CLUSTER_WORKER_REPLICAS; i++)); do
      if [[ -z $(pidfile_pids "$DATA/worker-$i.pid") ]]; then
        tail -n 30 "$LOG_DIR/worker-$i.log" >&2
        die "worker-$i exited (log: .data/cluster/logs/worker-$i.log)"
      fi
    done
  fi
  # A child sleep, so a signal (Ctrl-C, --down) is handled at once.
  sleep 1 &
  wait $! || true
done
