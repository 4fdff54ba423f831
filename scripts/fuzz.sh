#!/usr/bin/env bash
#
# Runs every fuzz target (Go native fuzzing) for SECONDS each, one after the
# other: `go test -fuzz` takes one target per package per run.
#
#   scripts/fuzz.sh [SECONDS] [NAME-REGEX]
#
#   scripts/fuzz.sh                 3 s each (what scripts/test.sh runs)
#   scripts/fuzz.sh 300             5 minutes each
#   scripts/fuzz.sh 600 ReadAnswer  one target (or those the regex matches)
#
# Every target is also an ordinary test: `go test ./...` runs its seeds (the
# f.Add calls and the checked-in corpus, testdata/fuzz/<Target>/) without
# fuzzing. New interesting inputs the fuzzer finds go to the Go build cache
# ($(go env GOCACHE)/fuzz), not into the repository; only an input that
# fails is written to the package's testdata/fuzz/<Target>/. Fix the fault,
# keep that file (git add it, renamed to say what it is) and it stays a
# regression test.
#
# The list below must name every `func FuzzXxx` in the repository: the
# script fails if one is missing, so a new target is run as soon as it
# exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib.sh

# package target: the parsers of outside input (README "Tests").
TARGETS=(
  "./models FuzzPreview"                     # starter preview --input file
  "./api FuzzAPIRequest"                     # activity, payment, close, usage bodies
  "./api FuzzWalletRequest"                  # wallet bodies
  "./rails/card FuzzVerifyWebhook"           # Stripe webhook deliveries
  "./rails/nwc FuzzParseURL"                 # NWC connection URLs
  "./rails/nwc FuzzReadAnswer"               # NIP-47 response content
  "./rails/nwc FuzzRelayDispatch"            # relay messages (response events)
  "./rails/lightning FuzzValidateBOLT11"     # BOLT11 invoices
  "./receipts FuzzVerify"                    # the payer's signed receipt event
  "./receipts FuzzCanonical"                 # a receipt's id encoding
  "./internal/payersign FuzzSign"            # sign requests a payer receives
  "./internal/payersign FuzzParseSecretKey"  # payer keys (hex or nsec)
)

secs=${1:-3}
only=${2:-}
[[ $secs =~ ^[0-9]+$ ]] && ((secs > 0)) || die "usage: scripts/fuzz.sh [SECONDS] [NAME-REGEX] (SECONDS a positive whole number, got '$secs')"

# Every target in the tree must be listed.
listed=$(printf '%s\n' "${TARGETS[@]}" | awk '{print $2}' | sort)
found=$(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' | sort)
if missing=$(comm -13 <(echo "$listed") <(echo "$found")) && [[ -n $missing ]]; then
  die "fuzz targets not listed in scripts/fuzz.sh: $(echo "$missing" | tr '\n' ' ')"
fi

ran=0
for t in "${TARGETS[@]}"; do
  read -r pkg name <<<"$t"
  if [[ -n $only && ! $name =~ $only ]]; then
    continue
  fi
  start=$(now_ms)
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" "$pkg" >"${TMPDIR:-/tmp}/billflow-fuzz.$$.log" 2>&1; then
    cat "${TMPDIR:-/tmp}/billflow-fuzz.$$.log" >&2
    rm -f "${TMPDIR:-/tmp}/billflow-fuzz.$$.log"
    die "$name ($pkg) failed; a failing input is in $pkg/testdata/fuzz/$name/ (keep it once fixed)"
  fi
  # On a busy machine the time can run out while the fuzzer is still
  # replaying the corpus for coverage: then there is no "execs:" line (and
  # grep's exit status must not end the script under pipefail).
  execs=$(grep -oE 'execs: [0-9]+' "${TMPDIR:-/tmp}/billflow-fuzz.$$.log" | tail -n 1 | awk '{print $2}' || true)
  if [[ -n $execs ]]; then
    log "$name ($pkg): ${secs}s fuzzing, $execs executions, $(fmt_duration $(($(now_ms) - start))) with the build"
  else
    log "$name ($pkg): ${secs}s spent replaying the corpus for coverage (no new executions), $(fmt_duration $(($(now_ms) - start))) with the build"
  fi
  ran=$((ran + 1))
done
rm -f "${TMPDIR:-/tmp}/billflow-fuzz.$$.log"
((ran > 0)) || die "no fuzz target matches '$only'"
log "$ran fuzz targets passed"
