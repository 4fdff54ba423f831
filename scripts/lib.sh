# shellcheck shell=bash
#
# Helpers shared by billflow's scripts (dev.sh, test.sh, seed-demo.sh, ...).
# Source it; don't run it. It only defines variables and functions.
#
# The local stack is deliberately made of private processes started from this
# repository (a PostgreSQL cluster under a data directory, the Temporal dev
# server from .bin/temporal), on free ports of 127.0.0.1, so that it needs no
# root, no Docker and no system services, and several checkouts can run side
# by side without clashing.

# File descriptor 9 is reserved for scripts/dev.sh's lock; servers are started
# with it closed so that they never hold the lock after the script is gone.

BILLFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$BILLFLOW_ROOT/.bin"
TEMPORAL_BIN="$BIN_DIR/temporal"

# The search attributes the workflows write (DESIGN.md section 5). The dev
# server forgets them unless they are registered at every start.
BILLFLOW_SEARCH_ATTRIBUTES=(
  BillingTenant=Keyword
  BillingInvoice=Keyword
  BillingStatus=Keyword
  PaymentRail=Keyword
  AmountDue=Int
  PeriodStart=Datetime
  WalletBalance=Int
  UsageState=Keyword
  UsageService=Keyword
)

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# now_ms prints a millisecond clock, for the timings the scripts report.
now_ms() { date +%s%3N; }

# fmt_duration MS prints "1m02.3s" / "4.5s".
fmt_duration() {
  local ms=$1 s
  s=$((ms / 1000))
  if ((s >= 60)); then
    printf '%dm%02d.%ds' $((s / 60)) $((s % 60)) $(((ms % 1000) / 100))
  else
    printf '%d.%ds' "$s" $(((ms % 1000) / 100))
  fi
}

# run_step NAME COMMAND...: runs an external command as one named step of a
# script, timing it; on failure it says which step failed and exits with the
# command's status, so the last lines of a long log name the culprit.
run_step() {
  local name=$1 start rc=0
  shift
  start=$(now_ms)
  printf '\n==> %s\n' "$name" >&2
  "$@" || rc=$?
  if ((rc != 0)); then
    printf '\nFAILED: %s (exit %d, after %s)\n' "$name" "$rc" "$(fmt_duration $(($(now_ms) - start)))" >&2
    exit "$rc"
  fi
  printf -- '--- ok: %s (%s)\n' "$name" "$(fmt_duration $(($(now_ms) - start)))" >&2
}

# local_stack_env drops TLS / API-key / profile settings a user may have in
# their shell for a remote Temporal (Temporal Cloud): the CLI and the SDK's
# envconfig would apply them to the local dev server, which speaks plain gRPC.
# A codec endpoint (TEMPORAL_CODEC_*, e.g. from a sourced .data/env of an
# earlier run) would make the CLI decode through a server that is gone.
local_stack_env() {
  local v
  for v in $(compgen -e); do
    case $v in
      TEMPORAL_API_KEY | TEMPORAL_TLS | TEMPORAL_TLS_* | TEMPORAL_PROFILE | TEMPORAL_GRPC_META_* | TEMPORAL_CODEC_*)
        unset "$v"
        ;;
    esac
  done
}

# ---------------------------------------------------------------------------
# Ports

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  # shellcheck disable=SC2016 # $0 is expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

_BILLFLOW_PORTS_GIVEN=" "

# free_port VAR sets VAR to a TCP port nothing listens on. Ports come from
# below the kernel's ephemeral range (32768+), so outgoing connections cannot
# take them in the meantime, and are never handed out twice by one script.
# Another program may still bind one before our server does; the servers then
# fail loudly at start and the callers retry.
free_port() {
  local _p _i
  for ((_i = 0; _i < 200; _i++)); do
    _p=$((20000 + RANDOM % 12000))
    [[ $_BILLFLOW_PORTS_GIVEN == *" $_p "* ]] && continue
    if ! port_in_use "$_p"; then
      _BILLFLOW_PORTS_GIVEN+="$_p "
      printf -v "$1" '%s' "$_p"
      return 0
    fi
  done
  die "could not find a free TCP port on 127.0.0.1"
}

# ---------------------------------------------------------------------------
# Processes

# stop_pid PID NAME [GRACE_SECONDS]: SIGTERM, then SIGKILL after the grace
# period. Servers get the chance to flush (the Temporal dev server's SQLite
# file, the worker's in-flight activities) before being forced.
stop_pid() {
  local pid=$1 name=$2 grace=${3:-15} i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name (pid $pid) did not stop within ${grace}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Reap it when it is our child, so no zombie outlives the script.
  wait "$pid" 2>/dev/null || true
}

# stop_stale PIDFILE PATTERN NAME: a previous run killed with SIGKILL (or a
# closed terminal) cannot run its trap, and its server would keep the data
# directory and ports. Stop it, but only if the recorded pid still runs a
# command line matching PATTERN, so a recycled pid is never hit.
stop_stale() {
  local pidfile=$1 pattern=$2 name=$3 pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"; then
    warn "stopping $name (pid $pid) left running by an earlier run"
    stop_pid "$pid" "$name"
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------------------
# Tools (each pinned in its own Go module under tools/, built into .bin/)

# _go_build_tool MODULE_DIR OUTPUT PACKAGE: builds when OUTPUT is missing or
# older than the module's go.mod (a version bump). It builds to a temporary
# name and renames, so a concurrent script never sees a half-written binary.
_go_build_tool() {
  local moddir=$1 out=$2 pkg=$3 tmp start
  if [[ -x $out && $out -nt $moddir/go.mod ]]; then
    return 0
  fi
  mkdir -p "$BIN_DIR"
  tmp="$out.tmp.$$"
  start=$(now_ms)
  log "building $(basename "$out") from $pkg (pinned in ${moddir#"$BILLFLOW_ROOT"/})"
  if ! (cd "$moddir" && go build -o "$tmp" "$pkg"); then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$out"
  log "built .bin/$(basename "$out") in $(fmt_duration $(($(now_ms) - start)))"
}

# ensure_temporal_cli builds .bin/temporal (the Temporal CLI: dev server and
# Web UI). The first build takes a few minutes; later ones are instant.
ensure_temporal_cli() {
  _go_build_tool "$BILLFLOW_ROOT/tools/temporal" "$TEMPORAL_BIN" \
    github.com/temporalio/cli/cmd/temporal ||
    die "building the Temporal CLI failed (see the go output above)"
}

# ensure_lint_tools builds .bin/workflowcheck and .bin/staticcheck.
ensure_lint_tools() {
  _go_build_tool "$BILLFLOW_ROOT/tools/lint" "$BIN_DIR/workflowcheck" \
    go.temporal.io/sdk/contrib/tools/workflowcheck ||
    die "building workflowcheck failed (see the go output above)"
  _go_build_tool "$BILLFLOW_ROOT/tools/lint" "$BIN_DIR/staticcheck" \
    honnef.co/go/tools/cmd/staticcheck ||
    die "building staticcheck failed (see the go output above)"
}

# ensure_stripe_mock builds .bin/stripe-mock (pinned in tools/stripemock): it
# checks that the card rail's requests match Stripe's published API spec.
ensure_stripe_mock() {
  _go_build_tool "$BILLFLOW_ROOT/tools/stripemock" "$BIN_DIR/stripe-mock" \
    github.com/stripe/stripe-mock ||
    die "building stripe-mock failed (see the go output above)"
}

# ---------------------------------------------------------------------------
# PostgreSQL: a private cluster, owned by this repository's scripts.

PG_BIN=""
_PG_DATA=""
_PG_SOCK_TMP=""

# pg_find_bindir sets PG_BIN to a directory holding initdb, pg_ctl and
# postgres. Debian keeps them off PATH, under /usr/lib/postgresql/N/bin.
# ensure_chromium: the browser the integration tier's page tests drive
# (e2e/pages_test.go, through chromedp): $BILLFLOW_CHROMIUM, else Debian's
# /usr/bin/chromium. Missing, it is installed with apt-get when we are root
# (as in CI); otherwise the test command stops saying how to install it.
ensure_chromium() {
  local path=${BILLFLOW_CHROMIUM:-/usr/bin/chromium}
  [[ -x $path ]] && return 0
  if [[ -n ${BILLFLOW_CHROMIUM:-} ]]; then
    die "BILLFLOW_CHROMIUM=$path is not an executable: point it at chromium, or unset it and install it: apt-get install chromium"
  fi
  if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
    log "chromium is missing: installing it with apt-get (the browser tests need it)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq -o Dpkg::Use-Pty=0 >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends chromium >/dev/null ||
      die "installing chromium with apt-get failed; install it: apt-get install chromium"
    [[ -x $path ]] || die "apt-get installed chromium but $path is missing; set BILLFLOW_CHROMIUM"
    return 0
  fi
  die "chromium is missing (the invoice page tests drive it): install it: apt-get install chromium"
}

pg_find_bindir() {
  local d candidates=()
  if command -v pg_config >/dev/null 2>&1; then
    candidates+=("$(pg_config --bindir 2>/dev/null)")
  fi
  # Newest major version first.
  while IFS= read -r d; do
    candidates+=("$d")
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  if command -v initdb >/dev/null 2>&1; then
    candidates+=("$(dirname "$(command -v initdb)")")
  fi
  for d in "${candidates[@]}"; do
    if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
      PG_BIN=$d
      return 0
    fi
  done
  return 1
}

# _pg_run runs a server binary. initdb and postgres refuse to run as root, so
# root runs them as the `postgres` system user that the Debian package creates;
# from / because that user may not be allowed into the caller's directory.
_pg_run() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

_pg_psql() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U billflow "$@"
}

# pg_up DATA_DIR [--ephemeral]
#
# Starts a private PostgreSQL cluster kept in DATA_DIR (initialised on first
# use; superuser `billflow`, trust auth, reachable on 127.0.0.1 only) on a free
# port, creates the database `billflow`, and exports:
#   DATABASE_URL  postgres://billflow@127.0.0.1:PORT/billflow?sslmode=disable
#   PG_ADMIN_URL  the same for the `postgres` database (to create databases)
#   PG_PORT
# --ephemeral trades durability for speed (no fsync): for throwaway test
# clusters only. PG_EXTRA_OPTS, when set, adds server options (-c ...).
# The log goes to ${LOG_DIR:-DATA_DIR/logs}/postgres.log.
pg_up() {
  local dir=${1:?pg_up: DATA_DIR required} ephemeral=0 start
  [[ ${2:-} == --ephemeral ]] && ephemeral=1
  start=$(now_ms)

  pg_find_bindir || die "no PostgreSQL server binaries found (looked at 'pg_config --bindir', /usr/lib/postgresql/*/bin and PATH).
  Install them:   sudo apt-get install postgresql    (only the binaries are used; no system service is needed)
  or point billflow at an existing database:   export DATABASE_URL=postgres://USER:PASS@HOST:5432/DB"
  if ((EUID == 0)) && ! id postgres >/dev/null 2>&1; then
    die "running as root, but there is no 'postgres' user to run the PostgreSQL server as (initdb refuses root). Run as a normal user, or set DATABASE_URL."
  fi

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local pgdata=$dir/pgdata sockdir=$dir/run logdir=${LOG_DIR:-$dir/logs}
  mkdir -p "$pgdata" "$sockdir" "$logdir"
  local logfile=$logdir/postgres.log
  touch "$logfile"
  # A Unix socket path is limited to 107 bytes; a deep checkout would exceed
  # it, so fall back to a short private directory.
  if ((${#sockdir} > 80)); then
    sockdir=$(mktemp -d /tmp/billflow-pg.XXXXXX)
    _PG_SOCK_TMP=$sockdir
  fi
  if ((EUID == 0)); then
    chown -R postgres: "$dir" "$sockdir"
    chown postgres: "$logfile"
    if ! runuser -u postgres -- test -w "$pgdata" -a -w "$logfile"; then
      die "the 'postgres' user cannot reach $dir (a parent directory is private to root, e.g. /root).
  Run the script as a normal user, move the checkout, or set DATABASE_URL."
    fi
  fi
  chmod 700 "$pgdata"

  # Stop a server an earlier, killed run left behind on this data directory.
  if _pg_run "$PG_BIN/pg_ctl" status -D "$pgdata" >/dev/null 2>&1; then
    warn "stopping the PostgreSQL server an earlier run left running on $pgdata"
    _pg_run "$PG_BIN/pg_ctl" stop -D "$pgdata" -m fast -w -s >/dev/null 2>&1 || true
  fi

  if [[ ! -f $pgdata/PG_VERSION ]]; then
    local initdb_args=(-D "$pgdata" -U billflow --auth=trust --encoding=UTF8 --locale=C --no-instructions)
    ((ephemeral)) && initdb_args+=(--no-sync)
    if ! _pg_run "$PG_BIN/initdb" "${initdb_args[@]}" >>"$logfile" 2>&1; then
      tail -n 20 "$logfile" >&2
      die "initdb failed for $pgdata (log: $logfile)"
    fi
  fi

  # listen_addresses keeps the trust-auth cluster off every other interface.
  local opts="-c listen_addresses=127.0.0.1 -k '$sockdir'"
  ((ephemeral)) && opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  # PG_EXTRA_OPTS adds server options (scripts/bench.sh loads pg_stat_statements).
  [[ -n ${PG_EXTRA_OPTS:-} ]] && opts+=" $PG_EXTRA_OPTS"
  local attempt started=0
  for attempt in 1 2 3; do
    free_port PG_PORT
    if _pg_run "$PG_BIN/pg_ctl" start -D "$pgdata" -l "$logfile" -w -t 60 -s \
      -o "$opts -p $PG_PORT" >/dev/null 2>&1 9>&-; then
      started=1
      break
    fi
    warn "PostgreSQL did not start on port $PG_PORT (attempt $attempt); retrying on another port"
  done
  if ((!started)); then
    tail -n 20 "$logfile" >&2
    die "PostgreSQL failed to start (log: $logfile)"
  fi
  _PG_DATA=$pgdata

  # pg_ctl -w returns once the postmaster accepts connections; this also
  # proves TCP on 127.0.0.1 works, which is what every client will use.
  local i
  for ((i = 0; i < 100; i++)); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.1
  done
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ||
    die "PostgreSQL started but does not answer on 127.0.0.1:$PG_PORT (log: $logfile)"

  if [[ $(_pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'billflow'") != 1 ]]; then
    _pg_psql -d postgres -c 'CREATE DATABASE billflow' || die "could not create database billflow"
  fi

  export PG_PORT
  export DATABASE_URL="postgres://billflow@127.0.0.1:$PG_PORT/billflow?sslmode=disable"
  export PG_ADMIN_URL="postgres://billflow@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
  log "PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') up on 127.0.0.1:$PG_PORT in $(fmt_duration $(($(now_ms) - start))) (data: $pgdata, log: $logfile)"
}

# pg_down stops the cluster pg_up started (if any). Safe to call twice.
pg_down() {
  [[ -n $_PG_DATA ]] || return 0
  local pgdata=$_PG_DATA
  _PG_DATA=""
  if ! _pg_run "$PG_BIN/pg_ctl" stop -D "$pgdata" -m fast -w -t 30 -s >/dev/null 2>&1; then
    warn "PostgreSQL did not stop in time; stopping it immediately"
    _pg_run "$PG_BIN/pg_ctl" stop -D "$pgdata" -m immediate -w -s >/dev/null 2>&1 || true
  fi
  if [[ -n $_PG_SOCK_TMP ]]; then
    rm -rf "$_PG_SOCK_TMP"
    _PG_SOCK_TMP=""
  fi
}

# ---------------------------------------------------------------------------
# Temporal dev server (from .bin/temporal)

TEMPORAL_PID=""
_TEMPORAL_PIDFILE=""

# temporal_up DATA_DIR [--db-file FILE] [--headless] [--ui-codec-endpoint URL]
#
# Starts `temporal server start-dev` on free 127.0.0.1 ports with billflow's
# search attributes registered, waits until it serves and the attributes are
# visible, and exports TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (default) and
# TEMPORAL_UI_URL (empty with --headless); the Web UI decodes payloads through
# the codec server at --ui-codec-endpoint. Without --db-file the server keeps
# everything in memory. Its log is ${LOG_DIR:-DATA_DIR/logs}/temporal.log.
temporal_up() {
  local dir=${1:?temporal_up: DATA_DIR required} dbfile="" headless=0 codec="" start
  shift
  while (($#)); do
    case $1 in
      --db-file)
        dbfile=${2:?--db-file needs a path}
        shift 2
        ;;
      --headless)
        headless=1
        shift
        ;;
      --ui-codec-endpoint)
        codec=${2:?--ui-codec-endpoint needs a URL}
        shift 2
        ;;
      *) die "temporal_up: unknown option $1" ;;
    esac
  done
  ensure_temporal_cli
  start=$(now_ms)

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local logdir=${LOG_DIR:-$dir/logs}
  mkdir -p "$logdir"
  local logfile=$logdir/temporal.log
  _TEMPORAL_PIDFILE=$dir/temporal.pid
  stop_stale "$_TEMPORAL_PIDFILE" "server start-dev" "a Temporal dev server"

  local sa_args=() sa
  for sa in "${BILLFLOW_SEARCH_ATTRIBUTES[@]}"; do
    sa_args+=(--search-attribute "$sa")
  done

  local attempt port ui_port args
  for attempt in 1 2 3; do
    free_port port
    # Eager activities: an activity scheduled by a workflow task comes back
    # in the answer to that task when this worker has a free slot, instead
    # of through matching (the server's default is off).
    args=(server start-dev --ip 127.0.0.1 --port "$port" --log-level warn "${sa_args[@]}"
      --dynamic-config-value system.enableActivityEagerExecution=true)
    if ((headless)); then
      args+=(--headless)
    else
      free_port ui_port
      args+=(--ui-ip 127.0.0.1 --ui-port "$ui_port")
      [[ -n $codec ]] && args+=(--ui-codec-endpoint "$codec")
    fi
    [[ -n $dbfile ]] && args+=(--db-filename "$dbfile")

    # setsid: a Ctrl-C in the terminal goes to the script alone, whose trap
    # then stops the processes in order (worker, then Temporal, then
    # Postgres) instead of all of them dying at once.
    setsid "$TEMPORAL_BIN" "${args[@]}" >>"$logfile" 2>&1 9>&- &
    TEMPORAL_PID=$!
    echo "$TEMPORAL_PID" >"$_TEMPORAL_PIDFILE"

    if _temporal_wait_ready "$port"; then
      break
    fi
    if kill -0 "$TEMPORAL_PID" 2>/dev/null; then
      # Alive but not serving after the whole wait: retrying will not help.
      tail -n 20 "$logfile" >&2
      die "the Temporal dev server did not become ready on 127.0.0.1:$port (log: $logfile)"
    fi
    wait "$TEMPORAL_PID" 2>/dev/null || true
    TEMPORAL_PID=""
    warn "the Temporal dev server exited during start-up (attempt $attempt; a port may have been taken)"
    if ((attempt == 3)); then
      tail -n 20 "$logfile" >&2
      die "the Temporal dev server failed to start (log: $logfile)"
    fi
  done

  export TEMPORAL_ADDRESS="127.0.0.1:$port"
  export TEMPORAL_NAMESPACE=default
  if ((headless)); then
    export TEMPORAL_UI_URL=""
  else
    export TEMPORAL_UI_URL="http://127.0.0.1:$ui_port"
  fi
  log "Temporal dev server up on $TEMPORAL_ADDRESS${TEMPORAL_UI_URL:+, Web UI $TEMPORAL_UI_URL} in $(fmt_duration $(($(now_ms) - start))) (${dbfile:-in-memory}, log: $logfile)"
}

# _temporal_wait_ready PORT: true once the server reports SERVING and lists
# our search attributes (registered just after the frontend opens, so
# checking health alone would race with them).
_temporal_wait_ready() {
  local addr=127.0.0.1:$1 i
  for ((i = 0; i < 240; i++)); do
    kill -0 "$TEMPORAL_PID" 2>/dev/null || return 1
    if "$TEMPORAL_BIN" operator cluster health --disable-config-file --address "$addr" >/dev/null 2>&1 &&
      "$TEMPORAL_BIN" operator search-attribute list --disable-config-file --address "$addr" --namespace default 2>/dev/null |
      grep -q PeriodStart; then
      return 0
    fi
    sleep 0.25
  done
  return 1
}

# temporal_down stops the server temporal_up started (if any). Safe to call
# twice.
temporal_down() {
  [[ -n $TEMPORAL_PID ]] || return 0
  stop_pid "$TEMPORAL_PID" "the Temporal dev server" 20
  TEMPORAL_PID=""
  rm -f "$_TEMPORAL_PIDFILE"
}

# ---------------------------------------------------------------------------
# Demo data

# The demo tenant's id, a Nostr public key (64 lowercase hex digits, x-only
# secp256k1). Its private key is sha256("billflow-demo-tenant") =
# 8655ae41b9677353c10e91c0567b74823c3ebb5901f15766b85e95e83663b867, public on
# purpose: it is for demos only, and lets one read the demo's DMs.
# shellcheck disable=SC2034 # used by the scripts that source this file
DEMO_TENANT=3aaa5eb49d18657c01b3463e0ec86c11598d723895098df4041d03a4f7f4f6fe
