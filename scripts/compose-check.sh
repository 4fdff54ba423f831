#!/usr/bin/env bash
#
# Runs what docker-compose.yml runs for Temporal, without Docker: the shell
# of its one-shot jobs (temporal-schema: create and migrate the databases;
# temporal-setup: the namespace and the search attributes) and its temporal
# service's server command on config/temporal/cluster.yaml, with the binaries
# the cluster tier builds (.bin/temporal-server, .bin/temporal-sql-tool,
# .bin/temporal) and the schema files of the pinned server module, against a
# throwaway PostgreSQL. Each job runs twice, as `docker compose up` re-runs
# them. Only the images themselves (paths, users, `hostname -i`) are left
# unproven. Exit 0 when the server serves the namespace with every search
# attribute of scripts/lib.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

SERVER_PID=""
WORK=""
cleanup() {
  local rc=$?
  set +e
  stop_pid "$SERVER_PID" "the Temporal server" 30
  pg_down
  if ((rc == 0)); then
    rm -rf "$WORK"
  else
    printf 'logs kept in %s\n' "$WORK" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
local_stack_env

for b in temporal-server temporal-sql-tool temporal; do
  [[ -x $BIN_DIR/$b ]] || die ".bin/$b is missing: run scripts/cluster.sh --smoke once to build it"
done

# compose_script SERVICE prints the block scalar (`- |`) under SERVICE's
# `command:` in docker-compose.yml, with compose's `$$` escapes undone.
compose_script() {
  awk -v svc="  $1:" '
    $0 == svc { in_svc = 1; next }
    in_svc && /^  [a-z]/ { exit }
    in_svc && /^    command:/ { in_cmd = 1; next }
    in_cmd && /^      - \|/ { in_block = 1; next }
    in_block {
      if ($0 !~ /^        / && $0 != "") exit
      sub(/^        /, ""); print
    }
  ' docker-compose.yml | sed 's/\$\$/$/g'
}

# job NAME LOG COMMAND...: runs one compose job's command, its output in LOG.
job() {
  local name=$1 logfile=$2
  shift 2
  if ! "$@" >>"$logfile" 2>&1; then
    tail -n 20 "$logfile" >&2
    die "$name failed (log: $logfile)"
  fi
  log "$name: ok"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/billflow-compose-check.XXXXXX")
chmod 755 "$WORK"
LOG_DIR=$WORK/logs
mkdir -p "$LOG_DIR" "$WORK/bin"
for b in temporal-server temporal-sql-tool temporal; do
  ln -s "$BIN_DIR/$b" "$WORK/bin/$b"
done
pg_up "$WORK/pg" --ephemeral
# The temporal-postgresql service's superuser.
_pg_psql -d postgres -c "CREATE ROLE temporal LOGIN SUPERUSER PASSWORD 'temporal'"

schema=$(compose_script temporal-schema)
[[ $schema == *temporal-sql-tool* ]] || die "no temporal-schema command found in docker-compose.yml"
module=$(cd tools/temporal-server && go mod download -json go.temporal.io/server |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $module/schema ]] || die "no schema files in the server module ($module)"
schema=${schema//\/etc\/temporal\/schema/$module\/schema}
for run in 1 2; do
  job "temporal-schema (run $run)" "$LOG_DIR/schema.log" env PATH="$WORK/bin:$PATH" SQL_PLUGIN=postgres12 \
    SQL_HOST=127.0.0.1 SQL_PORT="$PG_PORT" SQL_USER=temporal SQL_PASSWORD=temporal sh -c "$schema"
done

server=$(compose_script temporal)
[[ $server == *"exec temporal-server --root /etc/billflow --config temporal"* ]] ||
  die "the temporal service does not run temporal-server on /etc/billflow/temporal"
# /etc/billflow/temporal is config/temporal, mounted; the service binds
# the loopback address here instead of the container's.
mkdir -p "$WORK/etc"
ln -s "$BILLFLOW_ROOT/config/temporal" "$WORK/etc/temporal"
server=${server//\/etc\/billflow/$WORK/etc}
server=${server//\$(hostname -i)/127.0.0.1}
free_port port
(
  export PATH="$WORK/bin:$PATH" TEMPORAL_DB_HOST=127.0.0.1 TEMPORAL_DB_PORT=$PG_PORT TEMPORAL_DB_USER=temporal \
    TEMPORAL_DB_PASSWORD=temporal TEMPORAL_DYNAMIC_CONFIG=$WORK/etc/temporal/dynamicconfig.yaml \
    TEMPORAL_FRONTEND_PORT=$port
  # The other ports keep their defaults unless taken (another server here).
  for v in FRONTEND_HTTP FRONTEND_MEMBERSHIP HISTORY HISTORY_MEMBERSHIP MATCHING MATCHING_MEMBERSHIP WORKER WORKER_MEMBERSHIP; do
    free_port "TEMPORAL_${v}_PORT"
    export "TEMPORAL_${v}_PORT"
  done
  exec sh -c "$server"
) >>"$LOG_DIR/temporal-server.log" 2>&1 &
SERVER_PID=$!

setup=$(compose_script temporal-setup)
[[ $setup == *"search-attribute create"* ]] || die "no temporal-setup command found in docker-compose.yml"
for run in 1 2; do
  job "temporal-setup (run $run)" "$LOG_DIR/setup.log" env PATH="$WORK/bin:$PATH" \
    TEMPORAL_ADDRESS="127.0.0.1:$port" TEMPORAL_NAMESPACE=default timeout 180 sh -c "$setup"
done

list=$("$BIN_DIR/temporal" operator search-attribute list --disable-config-file --address "127.0.0.1:$port" --namespace default)
for sa in "${BILLFLOW_SEARCH_ATTRIBUTES[@]}"; do
  grep -qE "^ *${sa%%=*} +${sa#*=} *$" <<<"$list" || die "search attribute $sa is not registered (log: $LOG_DIR/setup.log)"
done
log "compose check: OK (databases migrated, server on config/temporal/cluster.yaml, namespace default and ${#BILLFLOW_SEARCH_ATTRIBUTES[@]} search attributes, each job run twice)"
