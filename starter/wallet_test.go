package main

import "testing"

// The wallet commands check their flags before connecting: these fail with
// exit code 2 naming the mistake, with no database configured.
func TestWalletCommandsCheckInputFirst(t *testing.T) {
	const tenant = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
	requireInvalid(t, runCLI(t, "wallet", "grant", "--tenant", tenant), "--amount is required")
	requireInvalid(t, runCLI(t, "wallet", "grant", "--tenant", tenant, "--amount", "0"), "amount 0 is not positive")
	requireInvalid(t, runCLI(t, "wallet", "grant", "--tenant", tenant, "--amount", "5", "--expires", "soon"), "--expires", `"soon" is not an RFC3339 instant`)
	requireInvalid(t, runCLI(t, "wallet", "top-up", "--tenant", tenant, "--amount", "-1"), "amount -1 is not positive")
	requireInvalid(t, runCLI(t, "wallet", "withdraw", "--tenant", tenant, "--amount", "5"), "--reference is required")
	requireInvalid(t, runCLI(t, "wallet", "withdraw", "--tenant", tenant, "--amount", "5", "--bolt11", "lnbcrt1x"), "--key is required")
	requireInvalid(t, runCLI(t, "wallet", "withdraw", "--tenant", tenant, "--amount", "5", "--bolt11", "lnbcrt1x", "--reference", "r"), "either --bolt11 or --reference")
	requireInvalid(t, runCLI(t, "wallet", "auto-recharge", "--tenant", tenant), "--threshold and --amount, or --off")
	requireInvalid(t, runCLI(t, "wallet", "auto-recharge", "--tenant", tenant, "--off", "--amount", "5"), "--off")
	requireInvalid(t, runCLI(t, "wallet", "show"), "--tenant is required")
	requireInvalid(t, runCLI(t, "wallet", "bogus"), `unknown command "bogus"`)
}
