#!/usr/bin/env bash
#
# The optional regtest tier: the Lightning rail against real nodes.
#
#   1. builds lnd, lncli, btcd and btcctl into .bin/ (pinned in tools/lnd)
#   2. starts a private btcd on simnet and two lnd nodes (--noseedbackup):
#        alice  the payer: mined coins, a 1,000,000 sat channel to bob
#        bob    the engine's node: it issues the invoices and pays
#               alice's (payouts, with a baked offchain macaroon)
#   3. runs  go test -tags regtest -run Regtest ./rails/lightning/  with
#      BILLFLOW_REGTEST_* pointing at bob (address, tls.cert, macaroons)
#      and at a script paying from alice (lncli payinvoice)
#
# Everything runs from a temporary directory on free ports of 127.0.0.1 and
# is stopped at the end; logs are kept when something fails. Each step is
# timed. Extra arguments go to `go test` (e.g. -v).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

T0=$(now_ms)
NET=simnet
RPCUSER=billflow
RPCPASS=billflow-regtest
WORK=""
BTCD_PID=""
ALICE_PID=""
BOB_PID=""
BTCD_HOME="$(getent passwd "$(id -u)" | cut -d: -f6)/.btcd"
HAD_BTCD_HOME=0
[[ -e $BTCD_HOME ]] && HAD_BTCD_HOME=1

cleanup() {
  local rc=$?
  set +e
  trap - INT TERM HUP
  stop_pid "$ALICE_PID" "lnd alice" 20
  stop_pid "$BOB_PID" "lnd bob" 20
  stop_pid "$BTCD_PID" "btcd" 20
  # btcd creates ~/.btcd (from the passwd entry, not $HOME) even when told
  # to keep everything elsewhere; remove it if this run made it empty.
  if ((!HAD_BTCD_HOME)) && [[ -d $BTCD_HOME ]]; then
    rmdir "$BTCD_HOME" 2>/dev/null
  fi
  if [[ -n $WORK ]]; then
    if ((rc == 0)); then
      rm -rf "$WORK"
    else
      printf 'logs kept in %s (btcd/btcd.log, alice/lnd.log, bob/lnd.log)\n' "$WORK" >&2
    fi
  fi
  if ((rc == 0)); then
    printf '\nPASS: regtest tier in %s\n' "$(fmt_duration $(($(now_ms) - T0)))"
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
command -v jq >/dev/null || die "jq is needed to read lncli's JSON output: apt-get install jq"

# --- binaries -----------------------------------------------------------------

build_tools() {
  local bin
  for bin in "lnd:github.com/lightningnetwork/lnd/cmd/lnd" \
    "lncli:github.com/lightningnetwork/lnd/cmd/lncli" \
    "btcd:github.com/btcsuite/btcd" \
    "btcctl:github.com/btcsuite/btcd/cmd/btcctl"; do
    _go_build_tool "$BILLFLOW_ROOT/tools/lnd" "$BIN_DIR/${bin%%:*}" "${bin#*:}" ||
      die "building ${bin%%:*} failed (see the go output above)"
  done
}
run_step "build lnd, lncli, btcd, btcctl (tools/lnd)" build_tools

WORK=$(mktemp -d "${TMPDIR:-/tmp}/billflow-regtest.XXXXXX")
# The nodes' HOME, so that nothing they default to lands in the real one.
mkdir -p "$WORK/home" "$WORK/btcd"
# Empty config files: without them btcd and btcctl write defaults into the
# real home directory (they ignore $HOME).
: >"$WORK/btcd/btcd.conf"
: >"$WORK/btcd/btcctl.conf"

# --- helpers ------------------------------------------------------------------

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  die "timed out after ${secs}s waiting for: $what"
}

btcctl() {
  HOME=$WORK/home "$BIN_DIR/btcctl" -C "$WORK/btcd/btcctl.conf" --$NET --rpcuser=$RPCUSER --rpcpass=$RPCPASS \
    --rpcserver="127.0.0.1:$BTCD_RPC" --rpccert="$WORK/btcd/rpc.cert" "$@"
}

lncli() {
  local name=$1
  shift
  local port_var=${name^^}_RPC
  HOME=$WORK/home "$BIN_DIR/lncli" --network=$NET --lnddir="$WORK/$name" \
    --rpcserver="127.0.0.1:${!port_var}" "$@"
}

# The step functions below run under run_step's `||`, where bash ignores
# set -e: every command that matters says what failed itself.
mine() { btcctl generate "$1" >/dev/null || die "btcctl generate $1 failed"; }

# start_btcd [MINING_ADDRESS]: (re)starts btcd on the same ports and data.
start_btcd() {
  local args=("--$NET" -C "$WORK/btcd/btcd.conf" --datadir="$WORK/btcd/data" --logdir="$WORK/btcd"
    --rpccert="$WORK/btcd/rpc.cert" --rpckey="$WORK/btcd/rpc.key"
    --rpcuser="$RPCUSER" --rpcpass="$RPCPASS" --rpclisten="127.0.0.1:$BTCD_RPC"
    --listen="127.0.0.1:$BTCD_P2P" --txindex --nodnsseed)
  [[ -n ${1:-} ]] && args+=(--miningaddr="$1")
  HOME=$WORK/home "$BIN_DIR/btcd" "${args[@]}" >>"$WORK/btcd/stdout.log" 2>&1 9>&- &
  BTCD_PID=$!
  wait_until "btcd RPC" 60 btcctl getblockcount
}

start_lnd() {
  local name=$1 rpc_var=${1^^}_RPC p2p_var=${1^^}_P2P
  mkdir -p "$WORK/$name"
  HOME=$WORK/home "$BIN_DIR/lnd" --lnddir="$WORK/$name" --noseedbackup --alias="$name" \
    --bitcoin.$NET --bitcoin.node=btcd --btcd.rpchost="127.0.0.1:$BTCD_RPC" \
    --btcd.rpcuser=$RPCUSER --btcd.rpcpass=$RPCPASS --btcd.rpccert="$WORK/btcd/rpc.cert" \
    --rpclisten="127.0.0.1:${!rpc_var}" --listen="127.0.0.1:${!p2p_var}" --norest \
    --nobootstrap --trickledelay=50 --debuglevel=info \
    >"$WORK/$name/lnd.log" 2>&1 9>&- &
  printf -v "${1^^}_PID" '%s' "$!"
}

synced() { [[ $(lncli "$1" getinfo | jq -r .synced_to_chain) == true ]]; }
funded() { (($(lncli alice walletbalance | jq -r .confirmed_balance) > 0)); }
alice_ready() { synced alice && funded; }
channel_active() { (($(lncli "$1" listchannels --active_only | jq '.channels | length') > 0)); }

# --- the network --------------------------------------------------------------

free_port BTCD_RPC
free_port BTCD_P2P
free_port ALICE_RPC
free_port ALICE_P2P
free_port BOB_RPC
free_port BOB_P2P

start_network() {
  start_btcd
  start_lnd alice
  start_lnd bob
  wait_until "alice's RPC" 120 lncli alice getinfo
  wait_until "bob's RPC" 120 lncli bob getinfo

  # btcd mines to one address set at start: restart it with alice's, the
  # way lnd's own docker set-up does. lnd reconnects by itself.
  local addr
  addr=$(lncli alice newaddress np2wkh | jq -r .address) || die "lncli newaddress failed"
  [[ -n $addr && $addr != null ]] || die "alice returned no address"
  stop_pid "$BTCD_PID" btcd 20
  start_btcd "$addr"
  # 100 blocks for coinbase maturity, ~300 more to activate segwit on simnet.
  mine 400
  wait_until "alice synced and funded" 120 alice_ready
  wait_until "bob synced" 120 synced bob
}
run_step "start btcd ($NET) and lnd alice + bob, mine 400 blocks" start_network

open_channel() {
  local bob_key
  bob_key=$(lncli bob getinfo | jq -r .identity_pubkey) || die "lncli getinfo (bob) failed"
  lncli alice connect "$bob_key@127.0.0.1:$BOB_P2P" >/dev/null || die "alice could not connect to bob"
  # push_amt gives bob (the engine) funds to pay out with.
  lncli alice openchannel --node_key="$bob_key" --local_amt=1000000 --push_amt=300000 >/dev/null || die "alice could not open a channel to bob"
  mine 6
  wait_until "the channel active at alice" 120 channel_active alice
  wait_until "the channel active at bob" 120 channel_active bob
}
run_step "open a 1,000,000 sat channel alice -> bob (300,000 pushed to bob)" open_channel

# The payer the tests call: alice pays the BOLT11 in $1.
cat >"$WORK/pay.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
out=\$(HOME="$WORK/home" "$BIN_DIR/lncli" --network=$NET --lnddir="$WORK/alice" \\
  --rpcserver="127.0.0.1:$ALICE_RPC" payinvoice --force --json --timeout=60s "\$1")
printf '%s\n' "\$out"
[[ \$(printf '%s' "\$out" | jq -r .status) == SUCCEEDED ]]
EOF
chmod +x "$WORK/pay.sh"

# Payouts: alice's invoices ($1 msat, $2 seconds), paid by bob with a
# macaroon baked with only what payouts need.
cat >"$WORK/invoice.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
HOME="$WORK/home" "$BIN_DIR/lncli" --network=$NET --lnddir="$WORK/alice" \\
  --rpcserver="127.0.0.1:$ALICE_RPC" addinvoice --amt_msat="\$1" --expiry="\$2" --memo=withdrawal
EOF
chmod +x "$WORK/invoice.sh"
lncli bob bakemacaroon --save_to="$WORK/bob-payout.macaroon" offchain:read offchain:write info:read >/dev/null ||
  die "lncli bakemacaroon (bob's payout macaroon) failed"

chain_dir=$WORK/bob/data/chain/bitcoin/$NET
export BILLFLOW_REGTEST_LND_ADDR=127.0.0.1:$BOB_RPC
export BILLFLOW_REGTEST_LND_TLSCERT=$WORK/bob/tls.cert
export BILLFLOW_REGTEST_LND_MACAROON=$chain_dir/invoice.macaroon
export BILLFLOW_REGTEST_LND_READONLY_MACAROON=$chain_dir/readonly.macaroon
export BILLFLOW_REGTEST_NETWORK=$NET
export BILLFLOW_REGTEST_PAY_CMD=$WORK/pay.sh
export BILLFLOW_REGTEST_LND_PAYOUT_MACAROON=$WORK/bob-payout.macaroon
export BILLFLOW_REGTEST_INVOICE_CMD=$WORK/invoice.sh

run_step "go test -tags regtest -run Regtest ./rails/lightning/" \
  go test -tags regtest -count=1 -run Regtest "$@" ./rails/lightning/
