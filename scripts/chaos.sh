#!/usr/bin/env bash
#
# The chaos test, on the cluster tier (scripts/cluster.sh): 30 tenants on
# one-minute periods with mixed payment methods (NWC, card, declined card,
# processing card settled by a later webhook, none) record activities for 8
# minutes while a worker replica is SIGKILLed at random moments (24 times,
# restarted each time), the Temporal server and PostgreSQL are restarted
# once, the api is killed with webhooks in flight, the relay, Lightning node,
# NWC wallet and Stripe sandboxes are restarted, and the NWC wallet answers
# late (past the client's timeout) and not at all. Then, with the system
# settled, it checks (e2e/chaos):
#   - charges per invoice on the Stripe sandbox and payments per invoice on
#     the Lightning node: never more than one unless recorded as overpayment
#   - one renewal per resource per boundary crossed while active on a paid
#     plan, derived from the driver's own activity log
#   - each item on at most one invoice; invoice totals equal their items
#   - every invoice of a tenant with a working method paid; tenants that
#     cannot pay in grace or suspended
#   - no workflow failed, terminated or timed out
#   - no secret (NWC secret, Stripe key, robot key, macaroon, secret key, api
#     token, webhook secrets) in any workflow history, search attribute, memo
#     or log file
# and prints one summary line; non-zero exit on any violation.
#
#   scripts/chaos.sh [--duration 8m] [--settle 6m] [--period 1m] [--tenants 30] [--kills 24] [--seed N]
#
# A cluster tier already running in this checkout is used (and left
# running); otherwise one is started and stopped afterwards. The driver's
# activity log is kept in .data/cluster/chaos-activities.jsonl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

case ${1:-} in
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

DATA=$BILLFLOW_ROOT/.data/cluster
started=0
if [[ ! -f $DATA/ready ]]; then
  bash scripts/cluster.sh --detach
  started=1
fi
# shellcheck disable=SC2317 # called by the EXIT trap
stop_cluster() {
  local rc=$?
  ((started)) && bash scripts/cluster.sh --down
  exit "$rc"
}
trap stop_cluster EXIT

run_step "go build -o .bin/chaos ./e2e/chaos" go build -o "$BIN_DIR/chaos" ./e2e/chaos
set +e
(
  # set -a: the env file's LNNODE_* and NWC_* lines are plain assignments.
  set -a
  # shellcheck disable=SC1091 # written by scripts/cluster.sh
  source "$DATA/env"
  set +a
  exec "$BIN_DIR/chaos" --data "$DATA" --root "$BILLFLOW_ROOT" --bin "$BIN_DIR" "$@"
) 2>&1 | tee "$DATA/chaos.out"
exit "${PIPESTATUS[0]}"
