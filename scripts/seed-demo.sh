#!/usr/bin/env bash
#
# Seeds the running dev stack with demo tenants, all on 2-minute billing
# periods (so renewals and invoices show up in the Web UI within minutes):
#
#   - the demo tenant: two resources, relay-1 on plan `pro` and relay-2 on
#     plan `basic`, and no payment method;
#   - three payment-demo tenants, one resource each, whose first invoice is
#     claimed at once (`starter renew`) so that collection starts now:
#       nwc    an NWC connection to the sandbox wallet: paid over NWC;
#       card   an NWC connection the wallet never authorised (it answers
#              UNAUTHORIZED) and the Stripe customer cus_demo_visa: the NWC
#              attempt fails, then the card pays;
#       grace  no NWC and the Stripe customer cus_demo_declined: the card is
#              declined, the tenant gets a DM with the payment link, a grace
#              window opens, and the tenant is suspended when it ends
#              (BILLFLOW_GRACE_WINDOW, 3 minutes under scripts/dev.sh);
#       wallet a prepaid wallet with 7.00 USD of credit and auto-recharge
#              (threshold 3.00, amount 10.00) over its NWC connection: the
#              wallet pays each invoice first, and when it falls below 3.00
#              its balance sync tops it up over NWC.
#
# scripts/dev.sh runs it; it is safe to run again by hand: it skips tenants
# that exist, records activities under fixed ids (a replay returns the first
# outcome), and only sets the payment methods again (the NWC URLs then name
# the relay the sandbox wallet listens on now). It reaches the stack through
# .data/env (BILLFLOW_DATA_DIR/env when set: scripts/cluster.sh seeds its
# stack in .data/cluster), or through the environment when that file is absent (e.g.
# against another deployment); the payment demos need the dev stack's
# sandboxes (NWC_* variables, BILLFLOW_SECRET_KEY) and are skipped without.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

STARTER=$BIN_DIR/starter
[[ -x $STARTER ]] || die "$STARTER is missing: run scripts/dev.sh (or scripts/build.sh) first"
DATA_DIR=${BILLFLOW_DATA_DIR:-.data}
DATA_DIR=${DATA_DIR#"$PWD"/}
if [[ -f $DATA_DIR/env ]]; then
  # shellcheck disable=SC1091 # written at run time by dev.sh
  source "$DATA_DIR/env"
elif [[ -z ${TEMPORAL_ADDRESS:-} ]]; then
  die "no $DATA_DIR/env and no TEMPORAL_ADDRESS: start the stack with scripts/dev.sh first"
fi

# The payment-demo tenants' ids: Nostr public keys (x-only secp256k1) whose
# private keys are sha256 of a fixed string, like the demo tenant's (see
# scripts/lib.sh): public on purpose, so one can read their DMs.
#   sha256("billflow-demo-nwc")   = f73338a51b53f0e9ea23f1216ba6632f7e14d9a67ac7764f3fc529b0958e144a
#   sha256("billflow-demo-card")  = f34617b6562ce76f151c80562fc4710f6e7821a4587d642508e674160ba8fca3
#   sha256("billflow-demo-grace") = a43f04ef6d4aed86bade56a4fc48d5f7445a280d544cae1ee1b6b07aa4e92921
#   sha256("billflow-demo-wallet") = 95d4679beec98abee9c47c51a24b14717819d10c75b92e5fc12b0167aa9d1fa5
NWC_TENANT=7f40f288d7e9339c2cd10b16ca09e1eeaf15f311708fe52b4f63f7ac9c724719
CARD_TENANT=e1a5cefc1f790421d81062e6b0b62d4663f3099fa79809a5141923909eaaf0df
GRACE_TENANT=47f55c1981bcbe42c74208648eb34ecdb8155e5c70169514e9ef184b1ca2bbd6
WALLET_TENANT=c91fe185a0553279b92f44ecef802137f7cfb3209ea606b4a2a4e209897a86ea

# ensure_tenant ID: creates the tenant with 2-minute periods unless it exists.
# `tenant show` succeeding is the reliable "already exists" test; matching
# the text of a create error would break whenever its wording changes.
ensure_tenant() {
  if "$STARTER" tenant show --tenant "$1" >/dev/null 2>&1; then
    log "tenant $1 exists; not creating it again"
  else
    "$STARTER" tenant create --tenant "$1" --period 2m
  fi
}

# record_resource TENANT ACTIVITY_ID RESOURCE PLAN: records resource_created
# with a fixed activity id, so a re-run is an idempotent replay (the engine
# returns the first outcome) rather than a second creation.
record_resource() {
  "$STARTER" activity record --tenant "$1" --id "$2" \
    --type resource_created --resource "$3" --plan "$4"
}

T=$DEMO_TENANT
log "seeding demo tenant $T"
ensure_tenant "$T"
# In the dev stack the demo tenant pays by card (the Stripe sandbox's
# cus_demo_visa), so its renewals are collected rather than dunned.
if [[ -n ${NWC_WALLET_PUBKEY:-} ]]; then
  "$STARTER" tenant set-stripe-customer --tenant "$T" --customer cus_demo_visa >/dev/null
fi
record_resource "$T" demo-relay-1-created relay-1 pro
record_resource "$T" demo-relay-2-created relay-2 basic
log "demo data ready: .bin/starter tenant show --tenant $T"

# ---------------------------------------------------------------------------
# Payment demos

if [[ -z ${BILLFLOW_SECRET_KEY:-} || -z ${NWC_WALLET_PUBKEY:-} || -z ${NWC_RELAYS:-} || ! -r ${NWC_URL_FILE:-} ]]; then
  warn "no sandbox NWC wallet (NWC_WALLET_PUBKEY, NWC_RELAYS, NWC_URL_FILE) or no BILLFLOW_SECRET_KEY: skipping the payment demos (they need scripts/dev.sh's stack)"
  exit 0
fi

# nwc_url SECRET: a connection URL to the sandbox wallet, on the relays it
# listens on now, with the given client secret. It is only ever piped to
# `tenant set-nwc` (printf is a builtin: no command line shows it).
nwc_url() {
  local relays r params=""
  IFS=, read -ra relays <<<"$NWC_RELAYS"
  for r in "${relays[@]}"; do
    r=${r//:/%3A}
    r=${r//\//%2F}
    params+="relay=$r&"
  done
  printf 'nostr+walletconnect://%s?%ssecret=%s\n' "$NWC_WALLET_PUBKEY" "$params" "$1"
}

# set_nwc TENANT SECRET: stores the tenant's sealed NWC connection.
set_nwc() {
  nwc_url "$2" | "$STARTER" tenant set-nwc --tenant "$1" --url-file -
}

# The client secret the wallet authorised: the first URL it minted (the CLI
# mints connection URLs only at its first start, so every run shares it).
# Only the secret is taken: the relay in the file is where the wallet
# listened when it minted the URL, which a later run may have moved.
IFS= read -r first_url <"$NWC_URL_FILE" || true
secret_re='[?&]secret=([0-9a-fA-F]{64})(&|$)'
[[ $first_url =~ $secret_re ]] || die "$NWC_URL_FILE holds no NWC connection URL with a secret"
authorised_secret=${BASH_REMATCH[1]}
unset first_url BASH_REMATCH
# A secret the wallet never authorised: it answers UNAUTHORIZED at once.
unauthorised_secret=$(od -An -vtx1 -N32 /dev/urandom | tr -d ' \n')

declare -A INVOICE=()
# payment_demo TENANT NAME: records the tenant's resource (relay-1 on plan
# basic, under activity id demo-NAME-relay-1-created) and claims its invoice
# now; a re-run finds nothing owed, the period's renewal being done already.
payment_demo() {
  local tenant=$1 out
  record_resource "$tenant" "demo-$2-relay-1-created" relay-1 basic
  out=$("$STARTER" renew --tenant "$tenant")
  printf '%s\n' "$out"
  if [[ $out =~ invoice\ ([^ ]+)\ for ]]; then
    INVOICE[$tenant]=${BASH_REMATCH[1]}
  else
    INVOICE[$tenant]="(none claimed now; see invoice list)"
  fi
}

log "seeding payment-demo tenant $NWC_TENANT (pays over NWC)"
ensure_tenant "$NWC_TENANT"
set_nwc "$NWC_TENANT" "$authorised_secret"
"$STARTER" tenant set-stripe-customer --tenant "$NWC_TENANT" --customer ""
payment_demo "$NWC_TENANT" nwc

log "seeding payment-demo tenant $CARD_TENANT (NWC refused, then pays by card)"
ensure_tenant "$CARD_TENANT"
set_nwc "$CARD_TENANT" "$unauthorised_secret"
"$STARTER" tenant set-stripe-customer --tenant "$CARD_TENANT" --customer cus_demo_visa
payment_demo "$CARD_TENANT" card

log "seeding payment-demo tenant $GRACE_TENANT (card declined: DM, grace, suspension)"
ensure_tenant "$GRACE_TENANT"
"$STARTER" tenant set-nwc --tenant "$GRACE_TENANT" --clear
"$STARTER" tenant set-stripe-customer --tenant "$GRACE_TENANT" --customer cus_demo_declined
payment_demo "$GRACE_TENANT" grace

log "seeding payment-demo tenant $WALLET_TENANT (prepaid wallet with auto-recharge over NWC)"
ensure_tenant "$WALLET_TENANT"
set_nwc "$WALLET_TENANT" "$authorised_secret"
"$STARTER" tenant set-stripe-customer --tenant "$WALLET_TENANT" --customer ""
# Fixed keys: a re-run changes nothing.
"$STARTER" wallet grant --tenant "$WALLET_TENANT" --amount 700 --key demo-wallet-credit >/dev/null
"$STARTER" wallet auto-recharge --tenant "$WALLET_TENANT" --threshold 300 --amount 1000 >/dev/null
payment_demo "$WALLET_TENANT" wallet

# ---------------------------------------------------------------------------
# Usage demo: metered sessions (issue 10) of the sandbox metered client's
# payer (METERCLIENT_PUBKEY, its key in .data/meterclient/payer.key). The
# worker delivers every outbound event to that client (BILLFLOW_WEBHOOK_URL),
# which co-signs its payer's receipts through the api at once (mode auto).
#   demo-usage-paid  service vpn (1 cent a minute, a receipt a minute): 1 cent
#                    of credit pays the first receipt; a minute of usage brings
#                    the next, which the wallet cannot pay: GRACE (service
#                    goes on, usage counted as grace), a top-up of 1.00 USD is
#                    collected over NWC, the session is told, issues a new
#                    receipt the client signs, and is NORMAL again; then ended
#                    (settled, unused seconds kept as remain service).
#   demo-usage-free  service api-free (price 0): FREE, two minutes reported,
#                    left running (it ends after 15 minutes without reports).
#   demo-usage-pool  service relay-bandwidth, subsidised by the free-tier pool (issue 11):
#                    the payer is pinned trusted (config/pool.json: 2.00 USD a
#                    day), the pool is credited 10.00 USD, and its receipts are
#                    paid by the pool (free); left running, its current details
#                    show the pool's balance and today's absorbed amount.
# A session id names one session: a re-run finds them and starts nothing.
USAGE_DEMO=""
PAID_SESSION=demo-usage-paid
FREE_SESSION=demo-usage-free
POOL_SESSION=${BILLFLOW_DEMO_POOL_SESSION:-demo-usage-pool}

# usage_wait SESSION WHAT REGEX...: waits (up to a minute) until the
# session's JSON view matches every extended regex.
usage_wait() {
  local session=$1 what=$2 i out ok p
  shift 2
  for ((i = 0; i < 240; i++)); do
    out=$("$STARTER" usage show --session "$session" --json 2>/dev/null) || out=""
    ok=1
    for p in "$@"; do
      grep -Eq "$p" <<<"$out" || {
        ok=0
        break
      }
    done
    ((ok)) && return 0
    sleep 0.25
  done
  printf '%s\n' "$out" >&2
  warn "usage session $session: gave up waiting for $what"
  return 1
}

# usage_demo: the two sessions; non-zero (after a warning) when a step fails.
usage_demo() {
  local p=$METERCLIENT_PUBKEY
  log "seeding usage-demo payer $p (the sandbox metered client's key)"
  ensure_tenant "$p"
  set_nwc "$p" "$authorised_secret"
  "$STARTER" tenant set-stripe-customer --tenant "$p" --customer ""
  if "$STARTER" usage show --session "$PAID_SESSION" >/dev/null 2>&1; then
    log "usage demo sessions exist (an earlier run); not starting them again"
    return 0
  fi
  "$STARTER" wallet grant --tenant "$p" --amount 1 --key demo-usage-credit >/dev/null
  "$STARTER" usage start --session "$PAID_SESSION" --service vpn --payer "$p" --max-unit-price 60 || return 1
  usage_wait "$PAID_SESSION" "the first receipt signed by the metered client" \
    '"state": "NORMAL"' '"sub_state": "NORMAL"' '"receipts_signed": 1' || return 1
  "$STARTER" usage report --session "$PAID_SESSION" --id demo-usage-paid-1 --seconds 60 --bytes-received 4000000 --bytes-sent 500000
  usage_wait "$PAID_SESSION" "grace (the next receipt finds the wallet empty)" '"state": "GRACE"' || return 1
  log "$PAID_SESSION is in GRACE: service goes on; topping the wallet up over NWC"
  "$STARTER" usage report --session "$PAID_SESSION" --id demo-usage-paid-2 --seconds 20 --bytes-received 1000000 --bytes-sent 100000
  "$STARTER" wallet top-up --tenant "$p" --amount 100 --key demo-usage-top-up || return 1
  usage_wait "$PAID_SESSION" "NORMAL again after the top-up" \
    '"state": "NORMAL"' '"sub_state": "NORMAL"' '"receipts_signed": 2' || return 1
  "$STARTER" usage end --session "$PAID_SESSION" || return 1

  "$STARTER" usage start --session "$FREE_SESSION" --service api-free --payer "$p" --max-unit-price 0 || return 1
  "$STARTER" usage report --session "$FREE_SESSION" --id demo-usage-free-1 --seconds 120 --bytes-received 20000 --bytes-sent 8000
}

# pool_demo: a session subsidised by the free-tier pool, on relay-bandwidth
# (0.10 USD a receipt; no remain service from the sessions above). The payer
# is pinned trusted only now: a new payer's tier has no budget, so the paid
# session above went through its wallet.
pool_demo() {
  local p=$METERCLIENT_PUBKEY
  if "$STARTER" usage show --session "$POOL_SESSION" >/dev/null 2>&1; then
    log "the subsidised demo session exists (an earlier run); not starting it again"
    return 0
  fi
  "$STARTER" tier set --tenant "$p" --tier trusted --reason "demo: a trusted payer" >/dev/null || return 1
  "$STARTER" pool credit --key demo-pool-seed --amount 1000 --note "demo seed" >/dev/null || return 1
  "$STARTER" usage start --session "$POOL_SESSION" --service relay-bandwidth --payer "$p" --max-unit-price 100 || return 1
  usage_wait "$POOL_SESSION" "the first receipt paid by the free-tier pool" \
    '"state": "NORMAL"' '"receipts_signed": 1' '"last_serve": "free"' || return 1
  "$STARTER" usage report --session "$POOL_SESSION" --id demo-usage-pool-1 --seconds 30 --bytes-received 60000000 --bytes-sent 1000000
  usage_wait "$POOL_SESSION" "the next receipt paid by the pool" '"receipts_signed": 2' '"last_serve": "free"' || return 1
}

if [[ -n ${METERCLIENT_PUBKEY:-} ]]; then
  if usage_demo && pool_demo; then
    USAGE_DEMO=$METERCLIENT_PUBKEY
  else
    warn "the usage demo did not complete (see above, $DATA_DIR/logs/sandbox-meterclient.log and $DATA_DIR/logs/worker.log)"
  fi
else
  warn "no sandbox metered client (METERCLIENT_PUBKEY): skipping the usage demo"
fi
unset authorised_secret unauthorised_secret

grace=${BILLFLOW_GRACE_WINDOW:-"the worker's BILLFLOW_GRACE_WINDOW"}
cat <<EOF

Payment demos (2-minute periods: each tenant gets a new invoice every 2 minutes)

  nwc    $NWC_TENANT
         invoice ${INVOICE[$NWC_TENANT]}
         paid over NWC by the sandbox wallet within seconds (rail nwc)
  card   $CARD_TENANT
         invoice ${INVOICE[$CARD_TENANT]}
         NWC attempt fails (wallet answers UNAUTHORIZED), then the card
         cus_demo_visa pays (rail stripe)
  grace  $GRACE_TENANT
         invoice ${INVOICE[$GRACE_TENANT]}
         card cus_demo_declined is declined: a DM with the payment link, the
         invoice waits (awaiting_payment), a grace window opens and the tenant
         is suspended when it ends (after $grace)
  wallet $WALLET_TENANT
         invoice ${INVOICE[$WALLET_TENANT]}
         paid from its wallet (7.00 USD of credit, rail wallet); below 3.00
         its balance sync starts a 10.00 USD top-up, paid over NWC
         (.bin/starter wallet show --tenant $WALLET_TENANT)

EOF
if [[ -n $USAGE_DEMO ]]; then
  cat <<EOF
Usage demo (payer $USAGE_DEMO, the sandbox metered client)
  $PAID_SESSION  paid (vpn): the first receipt from 0.01 USD of credit, GRACE
                   when the next found the wallet empty, a 1.00 USD top-up over
                   NWC, NORMAL again, ended: .bin/starter usage show --session $PAID_SESSION
  $FREE_SESSION  FREE (api-free), ends after 15 min without reports: .bin/starter usage show --session $FREE_SESSION
  $POOL_SESSION  subsidised (relay-bandwidth): receipts paid by the free-tier pool (payer pinned
                   trusted), left running: .bin/starter usage show --session $POOL_SESSION
  the pool         .bin/starter pool show; its grants: .bin/starter pool grants
  statistics       .bin/starter usage stats --payer $USAGE_DEMO
  Web UI           usage/$PAID_SESSION and usage/$FREE_SESSION (search: UsageService="vpn")

EOF
fi
cat <<EOF
What to watch in the Temporal Web UI (search box: BillingTenant="<tenant id>"):
  invoice/<id>  the InvoicePayment workflow: its rail attempts, PaymentRail,
                BillingStatus; paid ones complete, the grace tenant's keeps
                retrying on the dunning schedule
  grace/<id>    the grace tenant's GraceWindow workflow, until suspension
  balance/<id>  the wallet tenant's BalanceSync: funds, spendable, top-ups
  tenant/<id>   each TenantBilling workflow: renewals and claims every period
  usage/<id>    a UsageSession: state, receipts, units, value in its details;
                its timers (sign timeouts, grace) and activities by name

EOF

# The hosted pages (BILLFLOW_PUBLIC_URL, served by the api): the grace
# tenant's invoice, left to pay by hand (payable: QR code and "pay by card",
# whose card is declined), and the NWC tenant's account page, whose invoice
# the wallet paid (open it from the list: a paid page).
if [[ -n ${BILLFLOW_PUBLIC_URL:-} && ${INVOICE[$GRACE_TENANT]} != "("* ]]; then
  pay_link=$("$STARTER" invoice page-link --invoice "${INVOICE[$GRACE_TENANT]}") || pay_link="(failed; see above)"
  account_link=$("$STARTER" tenant portal-link --tenant "$NWC_TENANT") || account_link="(failed; see above)"
  links=$(cat <<EOF
Hosted pages (open in a browser; the links are capabilities):
  invoice page   $pay_link
                 the grace tenant's invoice, payable: Lightning QR code (pay it:
                 .bin/lnnode pay --dir $DATA_DIR/lnnode BOLT11) and "pay by card"
  account page   $account_link
                 the NWC tenant: its paid invoice links to a paid page
EOF
)
  printf '%s\n\n' "$links"
  # dev.sh repeats them at the end of its banner.
  if [[ -d $DATA_DIR ]]; then
    printf '%s\n' "$links" >"$DATA_DIR/page-links"
  fi
fi
cat <<EOF
From the shell (source $DATA_DIR/env):
  .bin/starter invoice list
  .bin/starter invoice show --invoice ID        (rail attempts)
  .bin/starter tenant grace --tenant $GRACE_TENANT
  .bin/starter tenant payment-methods --tenant $CARD_TENANT
  .bin/starter invoice page-link --invoice ID   (its hosted page; --revoke for a new link)
  .bin/starter tenant portal-link --tenant ID   (the account page)
  .bin/starter usage show --session $PAID_SESSION   (a usage session; stats: usage stats --payer ID)
EOF
