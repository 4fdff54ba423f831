#!/usr/bin/env bash
#
# Seeds the running dev stack with a demo tenant: 2-minute billing periods
# (so renewals and invoices show up in the Web UI within minutes) and two
# resources, relay-1 on plan `pro` and relay-2 on plan `basic`.
#
# scripts/dev.sh runs it; it is safe to run again by hand (it skips what
# already exists). It reaches the stack through .data/env, or through the
# environment when that file is absent (e.g. against another deployment).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

STARTER=$BIN_DIR/starter
[[ -x $STARTER ]] || die "$STARTER is missing: run scripts/dev.sh (or scripts/build.sh) first"
if [[ -f .data/env ]]; then
  # shellcheck disable=SC1091 # written at run time by dev.sh
  source .data/env
elif [[ -z ${TEMPORAL_ADDRESS:-} ]]; then
  die "no .data/env and no TEMPORAL_ADDRESS: start the stack with scripts/dev.sh first"
fi

T=$DEMO_TENANT
log "seeding demo tenant $T"

# `tenant show` succeeding is the reliable "already exists" test; matching
# the text of a create error would break whenever its wording changes.
if "$STARTER" tenant show --tenant "$T" >/dev/null 2>&1; then
  log "demo tenant exists; not creating it again"
else
  "$STARTER" tenant create --tenant "$T" --period 2m
fi

# record_resource ID PLAN: records resource_created with a fixed activity id,
# so a re-run is an idempotent replay (the engine returns the first outcome)
# rather than a second creation.
record_resource() {
  local id=$1 plan=$2
  "$STARTER" activity record --tenant "$T" --id "demo-$id-created" \
    --type resource_created --resource "$id" --plan "$plan"
}
record_resource relay-1 pro
record_resource relay-2 basic

log "demo data ready: .bin/starter tenant show --tenant $T"
