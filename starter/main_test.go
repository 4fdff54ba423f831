package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/payloadcodec"
	"github.com/billflow/billflow/store"
)

// These tests drive the CLI in-process through run and need no server: the
// offline preview, and every command's input checking that happens before a
// connection is made.

// goldenDir holds the preview golden files shared with the models tests:
// NAME.input.json is the --input file; NAME.want.json is the PreviewResult
// (carrying "at", the --at instant) or, for a failure, {"at", "error"}.
const goldenDir = "../models/testdata/preview"

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the starter with args. Connection settings are cleared so that a
// command that wrongly tried to connect fails fast instead of reaching a
// developer's running stack.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	t.Setenv("DATABASE_URL", "")
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	if _, set := os.LookupEnv(payloadcodec.EnvKeys); !set {
		t.Setenv(payloadcodec.EnvKeys, payloadcodec.NewKey("unit"))
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// requireInvalid asserts exit code 2, nothing on stdout, and an error on
// stderr mentioning every word in mentions.
func requireInvalid(t *testing.T, r result, mentions ...string) {
	t.Helper()
	assert.Equal(t, exitInvalid, r.code, "exit code; stderr: %s", r.stderr)
	assert.Empty(t, r.stdout, "nothing on stdout")
	assert.True(t, strings.HasPrefix(r.stderr, "error: "), "stderr %q", r.stderr)
	for _, m := range mentions {
		assert.Contains(t, r.stderr, m)
	}
}

type goldenWant struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

func goldenCases(t *testing.T) []string {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join(goldenDir, "*.input.json"))
	require.NoError(t, err)
	require.NotEmpty(t, inputs, "no golden files in %s", goldenDir)
	var names []string
	for _, in := range inputs {
		names = append(names, strings.TrimSuffix(filepath.Base(in), ".input.json"))
	}
	return names
}

func TestPreviewGoldenFiles(t *testing.T) {
	successes, failures := 0, 0
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			input := filepath.Join(goldenDir, name+".input.json")
			raw, err := os.ReadFile(filepath.Join(goldenDir, name+".want.json"))
			require.NoError(t, err, "every input has a want file")
			var want goldenWant
			require.NoError(t, json.Unmarshal(raw, &want))
			require.False(t, want.At.IsZero(), "want file carries the --at instant")
			atFlag := want.At.Format(time.RFC3339)

			r := runCLI(t, "invoice", "preview", "--input", input, "--at", atFlag, "--json")
			if want.Error != "" {
				failures++
				requireInvalid(t, r, want.Error)
				assert.Equal(t, "error: "+want.Error+"\n", r.stderr)
				return
			}
			successes++
			require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			assert.Empty(t, r.stderr)
			var wantRes, got models.PreviewResult
			require.NoError(t, json.Unmarshal(raw, &wantRes))
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&got), "stdout: %s", r.stdout)
			assert.Equal(t, wantRes, got)
			assert.Equal(t, wantRes.Total, models.Total(func() []models.Item {
				items := make([]models.Item, len(got.Items))
				for i, it := range got.Items {
					items[i] = models.Item{Amount: it.Amount}
				}
				return items
			}()), "total is the sum of the items")

			// The table output of the same preview succeeds too and shows the total.
			text := runCLI(t, "invoice", "preview", "--input", input, "--at", atFlag)
			require.Equal(t, 0, text.code, "stderr: %s", text.stderr)
			assert.Contains(t, text.stdout, "total")
			assert.Empty(t, text.stderr)
		})
	}
	assert.Positive(t, successes, "some golden cases succeed")
	assert.Positive(t, failures, "some golden cases fail")
}

// TestPreviewGoldenHandValues pins one golden file to values computed by hand
// (DESIGN 4), so that regenerating the golden files cannot silently change them.
func TestPreviewGoldenHandValues(t *testing.T) {
	input := filepath.Join(goldenDir, "month_end_anchor.input.json")
	if _, err := os.Stat(input); err != nil {
		t.Skipf("golden file %s is missing", input)
	}
	r := runCLI(t, "invoice", "preview", "--input", input, "--at", "2026-05-15T00:00:00Z", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var got models.PreviewResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	// Anchor 01-31T10:00; a1 r1 basic 3000 at the anchor; a2 r2 pro 9000 with
	// 14 of 28 days left; S_1 renews both; a3 deactivates r2 with 16 of 31 days
	// left; S_2 and S_3 renew r1 only.
	var amounts []int64
	for _, it := range got.Items {
		amounts = append(amounts, it.Amount)
	}
	assert.Equal(t, []int64{3000, 4500, 3000, 9000, -4645, 3000, 3000}, amounts)
	assert.Equal(t, int64(20855), got.Total)
	require.NotNil(t, got.PeriodStart)
	assert.Equal(t, "2026-04-30T10:00:00Z", got.PeriodStart.Format(time.RFC3339))
	assert.Equal(t, "2026-05-31T10:00:00Z", got.PeriodEnd.Format(time.RFC3339))
}

func writeInput(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.json")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

const ownInput = `{
  "plans": [
    {"id": "basic", "name": "Basic", "amount": 3000, "currency": "usd"},
    {"id": "pro", "name": "Pro", "amount": 9000, "currency": "usd"}
  ],
  "activities": [
    {"id": "a1", "type": "resource_created", "resource_id": "r1", "plan_id": "basic", "created_at": "2026-03-01T00:00:00Z"},
    {"id": "a2", "type": "resource_deactivated", "resource_id": "r1", "created_at": "2026-03-16T12:00:00Z"},
    {"id": "a3", "type": "resource_created", "resource_id": "r2", "plan_id": "pro", "created_at": "2026-03-21T00:00:00Z"},
    {"id": "a4", "type": "resource_created", "resource_id": "r3", "plan_id": "pro", "created_at": "2026-05-02T00:00:00Z"}
  ]
}`

// TestPreviewOwnInput checks a small log against hand-computed values.
// Period 0 is [03-01, 04-01), 31 days:
//
//	a1 r1 basic at the anchor                          +3000
//	a2 r1 deactivated with 15.5 days left: -3000/2     -1500
//	a3 r2 pro with 11 days left: 9000*11/31 = 3193.55  +3194
//	S_1 = 04-01: r2 only (r1 inactive)                 +9000
//	a4 is after --at and ignored.                      = 13694
func TestPreviewOwnInput(t *testing.T) {
	in := writeInput(t, ownInput)
	r := runCLI(t, "invoice", "preview", "--input", in, "--at", "2026-04-15T00:00:00Z", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var got models.PreviewResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	type row struct {
		Kind     models.ItemKind
		Resource string
		Amount   int64
		Start    string
	}
	var rows []row
	for _, it := range got.Items {
		rows = append(rows, row{it.Kind, it.ResourceID, it.Amount, it.PeriodStart.Format(time.RFC3339)})
	}
	assert.Equal(t, []row{
		{models.KindProration, "r1", 3000, "2026-03-01T00:00:00Z"},
		{models.KindProration, "r1", -1500, "2026-03-01T00:00:00Z"},
		{models.KindProration, "r2", 3194, "2026-03-01T00:00:00Z"},
		{models.KindRenewal, "r2", 9000, "2026-04-01T00:00:00Z"},
	}, rows)
	assert.Equal(t, int64(13694), got.Total)
	assert.Equal(t, models.Currency("usd"), got.Currency)
	require.NotNil(t, got.BillingAnchor)
	assert.Equal(t, "2026-03-01T00:00:00Z", got.BillingAnchor.Format(time.RFC3339))
	assert.Equal(t, "2026-04-15T00:00:00Z", got.At.Format(time.RFC3339))
	require.NotNil(t, got.PeriodStart)
	require.NotNil(t, got.PeriodEnd)
	assert.Equal(t, "2026-04-01T00:00:00Z", got.PeriodStart.Format(time.RFC3339))
	assert.Equal(t, "2026-05-01T00:00:00Z", got.PeriodEnd.Format(time.RFC3339))

	// --at in another zone names the same instant.
	r2 := runCLI(t, "invoice", "preview", "--input", in, "--at", "2026-04-15T02:00:00+02:00", "--json")
	require.Equal(t, 0, r2.code, r2.stderr)
	assert.Equal(t, r.stdout, r2.stdout)

	// An empty log bills nothing.
	empty := writeInput(t, `{"plans": [{"id": "basic", "name": "Basic", "amount": 3000, "currency": "usd"}], "activities": []}`)
	r3 := runCLI(t, "invoice", "preview", "--input", empty, "--at", "2026-04-15T00:00:00Z", "--json")
	require.Equal(t, 0, r3.code, r3.stderr)
	var none models.PreviewResult
	require.NoError(t, json.Unmarshal([]byte(r3.stdout), &none))
	assert.Empty(t, none.Items)
	assert.NotNil(t, none.Items, `"items" is [] rather than null`)
	assert.Equal(t, int64(0), none.Total)
	assert.Nil(t, none.BillingAnchor)
}

func TestPreviewInvalidInput(t *testing.T) {
	good := writeInput(t, ownInput)
	unknownPlan := writeInput(t, strings.Replace(ownInput, `"plan_id": "pro"`, `"plan_id": "platinum"`, 1))
	malformed := writeInput(t, `{"plans": [`)
	notObject := writeInput(t, `[1, 2, 3]`)
	trailing := writeInput(t, ownInput+` {"plans": []}`)
	missing := filepath.Join(t.TempDir(), "does-not-exist.json")

	cases := []struct {
		name     string
		args     []string
		mentions []string
	}{
		{"unknown plan", []string{"--input", unknownPlan, "--at", "2026-04-15T00:00:00Z"}, []string{"activity a3", `"platinum"`, "catalog"}},
		{"malformed file", []string{"--input", malformed, "--at", "2026-04-15T00:00:00Z"}, []string{"input", "not a valid preview file"}},
		{"not an object", []string{"--input", notObject, "--at", "2026-04-15T00:00:00Z"}, []string{"not a valid preview file"}},
		{"missing --at", []string{"--input", good}, []string{"--at"}},
		{"missing --input", []string{"--at", "2026-04-15T00:00:00Z"}, []string{"--input"}},
		{"empty --at", []string{"--input", good, "--at", ""}, []string{"--at"}},
		{"bad --at", []string{"--input", good, "--at", "next tuesday"}, []string{"--at", "next tuesday", "RFC3339"}},
		{"date-only --at", []string{"--input", good, "--at", "2026-04-15"}, []string{"--at", "2026-04-15"}},
		{"missing file", []string{"--input", missing, "--at", "2026-04-15T00:00:00Z"}, []string{"--input", "does-not-exist.json"}},
		{"unknown flag", []string{"--input", good, "--at", "2026-04-15T00:00:00Z", "--frobnicate"}, []string{"frobnicate"}},
		{"trailing data", []string{"--input", trailing, "--at", "2026-04-15T00:00:00Z"}, []string{"input"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, json := range []bool{false, true} {
				args := append([]string{"invoice", "preview"}, tc.args...)
				if json {
					args = append(args, "--json")
				}
				requireInvalid(t, runCLI(t, args...), tc.mentions...)
			}
		})
	}
}

// TestPreviewPositionalArgumentIsUsageError: a stray argument is a command
// line mistake (exit 2), like an unknown flag.
func TestPreviewPositionalArgumentIsUsageError(t *testing.T) {
	in := writeInput(t, ownInput)
	requireInvalid(t, runCLI(t, "invoice", "preview", "--input", in, "--at", "2026-04-15T00:00:00Z", "extra"), "extra")
}

// TestUnknownCommandIsUsageError: a mistyped command is bad input (exit 2),
// not a failure of billflow (exit 1), and must not pass silently.
func TestUnknownCommandIsUsageError(t *testing.T) {
	requireInvalid(t, runCLI(t, "invoic"), "invoic")
	requireInvalid(t, runCLI(t, "invoice", "previeww"), "previeww")
}

// commandPaths lists every command's path below root, e.g. ["invoice", "preview"].
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
			continue
		}
		path := append(append([]string{}, prefix...), sub.Name())
		out = append(out, path)
		out = append(out, commandPaths(sub, path)...)
	}
	return out
}

func TestHelpForEveryCommand(t *testing.T) {
	root := newApp(&bytes.Buffer{}, &bytes.Buffer{}).rootCommand()
	paths := append([][]string{{}}, commandPaths(root, nil)...)
	// The commands the brief names must all be there.
	var names []string
	for _, p := range paths {
		names = append(names, strings.Join(p, " "))
	}
	for _, want := range []string{"tenant create", "tenant show", "tenant list", "activity record", "renew",
		"invoice list", "invoice show", "invoice mark-paid", "invoice preview",
		"invoice void", "invoice write-off", "invoice lightning", "invoice refunds",
		"discount create", "discount reserve", "discount show"} {
		assert.Contains(t, names, want)
	}
	for _, p := range paths {
		name := "starter " + strings.Join(p, " ")
		t.Run(name, func(t *testing.T) {
			for _, flag := range []string{"--help", "-h"} {
				r := runCLI(t, append(append([]string{}, p...), flag)...)
				assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
				assert.Empty(t, r.stderr)
				assert.Contains(t, r.stdout, "Usage:")
				assert.Contains(t, r.stdout, strings.TrimSpace(name))
			}
			r := runCLI(t, append([]string{"help"}, p...)...)
			assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stdout, "Usage:")
		})
	}
	// The preview's help documents its input file.
	r := runCLI(t, "invoice", "preview", "--help")
	for _, want := range []string{"--input", "--at", "--json", "billing_anchor", "activities"} {
		assert.Contains(t, r.stdout, want)
	}
}

// TestInputCheckedBeforeConnecting: commands reject bad input with exit 2
// before they try to reach Temporal or Postgres (none is running here).
func TestInputCheckedBeforeConnecting(t *testing.T) {
	tenant := "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"
	cases := []struct {
		name     string
		args     []string
		mentions []string
	}{
		{"renew without --tenant or --all", []string{"renew"}, []string{"--tenant", "--all"}},
		{"renew with both", []string{"renew", "--tenant", tenant, "--all"}, []string{"--tenant", "--all"}},
		{"renew json without target", []string{"renew", "--json"}, []string{"--tenant", "--all"}},
		{"tenant create without --tenant", []string{"tenant", "create"}, []string{"--tenant"}},
		{"tenant show without --tenant", []string{"tenant", "show"}, []string{"--tenant"}},
		{"activity record without flags", []string{"activity", "record"}, []string{"--tenant"}},
		{"activity record without --type", []string{"activity", "record", "--tenant", tenant, "--resource", "r1"}, []string{"--type"}},
		{"activity record bad --at", []string{"activity", "record", "--tenant", tenant, "--type", "resource_created", "--resource", "r1", "--plan", "basic", "--at", "yesterday"}, []string{"--at", "yesterday"}},
		{"invoice show without --invoice", []string{"invoice", "show"}, []string{"--invoice"}},
		{"invoice mark-paid without --invoice", []string{"invoice", "mark-paid"}, []string{"--invoice"}},
		{"tenant create bad --period", []string{"tenant", "create", "--tenant", tenant, "--period", "ten minutes"}, []string{"--period"}},
		{"invoice void without --invoice", []string{"invoice", "void"}, []string{"--invoice"}},
		{"invoice void empty --invoice", []string{"invoice", "void", "--invoice", " "}, []string{"--invoice", "empty"}},
		{"invoice void long --reason", []string{"invoice", "void", "--invoice", "inv-1", "--reason", strings.Repeat("x", 501)}, []string{"--reason", "500"}},
		{"invoice void positional", []string{"invoice", "void", "inv-1"}, []string{"inv-1"}},
		{"invoice write-off without --invoice", []string{"invoice", "write-off", "--reason", "gone"}, []string{"--invoice"}},
		{"invoice write-off long --reason", []string{"invoice", "write-off", "--invoice", "inv-1", "--reason", strings.Repeat("x", 501)}, []string{"--reason", "500"}},
		{"invoice lightning without --invoice", []string{"invoice", "lightning", "--json"}, []string{"--invoice"}},
		{"invoice lightning empty --invoice", []string{"invoice", "lightning", "--invoice", ""}, []string{"--invoice", "empty"}},
		{"invoice refunds bad --tenant", []string{"invoice", "refunds", "--tenant", "alice"}, []string{"tenant", "alice"}},
		{"invoice refunds positional", []string{"invoice", "refunds", "extra"}, []string{"extra"}},
		{"discount create without flags", []string{"discount", "create"}, []string{"--code"}},
		{"discount create without --max", []string{"discount", "create", "--code", "SPRING"}, []string{"--max"}},
		{"discount create without --code", []string{"discount", "create", "--max", "3"}, []string{"--code"}},
		{"discount create zero --max", []string{"discount", "create", "--code", "SPRING", "--max", "0"}, []string{"--max", "positive"}},
		{"discount create negative --max", []string{"discount", "create", "--code", "SPRING", "--max", "-2"}, []string{"--max", "-2"}},
		{"discount create non-numeric --max", []string{"discount", "create", "--code", "SPRING", "--max", "ten"}, []string{"--max", "ten"}},
		{"discount create bad --code", []string{"discount", "create", "--code", "spring sale!", "--max", "3"}, []string{"--code", "spring sale!"}},
		{"discount create long --code", []string{"discount", "create", "--code", strings.Repeat("A", 65), "--max", "3"}, []string{"--code"}},
		{"discount reserve without --invoice", []string{"discount", "reserve", "--code", "SPRING"}, []string{"--invoice"}},
		{"discount reserve without --code", []string{"discount", "reserve", "--invoice", "inv-1"}, []string{"--code"}},
		{"discount reserve empty --code", []string{"discount", "reserve", "--invoice", "inv-1", "--code", ""}, []string{"--code", "empty"}},
		{"discount reserve bad --code", []string{"discount", "reserve", "--invoice", "inv-1", "--code", "50%"}, []string{"--code", "50%"}},
		{"discount show without --code", []string{"discount", "show", "--json"}, []string{"--code"}},
		{"discount show bad --code", []string{"discount", "show", "--code", "a/b"}, []string{"--code", "a/b"}},
		{"discount unknown subcommand", []string{"discount", "delete"}, []string{"delete"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireInvalid(t, runCLI(t, tc.args...), tc.mentions...)
		})
	}
}

// Without payload keys, a command that reaches Temporal stops before
// dialing: a configuration error naming the variable (exit 2).
func TestCommandsNeedPayloadKeys(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	t.Setenv(payloadcodec.EnvKeys, "")
	require.NoError(t, os.Unsetenv(payloadcodec.EnvKeys))
	call := func() result {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"invoice", "void", "--invoice", "inv-1", "--reason", "duplicate"}, &stdout, &stderr)
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	requireInvalid(t, call(), "BILLFLOW_PAYLOAD_KEYS is not set", "plaintext")
	t.Setenv(payloadcodec.EnvKeys, "k1:short")
	requireInvalid(t, call(), `BILLFLOW_PAYLOAD_KEYS entry 1 (key id "k1")`)
}

// TestValidInputReachesTheServers: with valid flags the new commands get as far
// as connecting, and say which connection they lack (exit 1, not 2).
func TestValidInputReachesTheServers(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		mention string
	}{
		{"invoice show", []string{"invoice", "show", "--invoice", "inv-1", "--json"}, "DATABASE_URL"},
		{"invoice void", []string{"invoice", "void", "--invoice", "inv-1", "--reason", "duplicate"}, "temporal"},
		{"invoice write-off", []string{"invoice", "write-off", "--invoice", "inv-1"}, "temporal"},
		{"invoice lightning", []string{"invoice", "lightning", "--invoice", "inv-1", "--json"}, "temporal"},
		{"invoice refunds", []string{"invoice", "refunds"}, "DATABASE_URL"},
		{"invoice refunds for a tenant", []string{"invoice", "refunds", "--tenant", "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"}, "DATABASE_URL"},
		{"discount create", []string{"discount", "create", "--code", "SPRING_26", "--max", "3"}, "DATABASE_URL"},
		{"discount reserve", []string{"discount", "reserve", "--invoice", "inv-1", "--code", "SPRING-26"}, "DATABASE_URL"},
		{"discount show", []string{"discount", "show", "--code", "spring"}, "DATABASE_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.args...)
			assert.Equal(t, exitFailure, r.code, "exit code; stderr: %s", r.stderr)
			assert.Empty(t, r.stdout)
			assert.True(t, strings.HasPrefix(r.stderr, "error: "), "stderr %q", r.stderr)
			assert.Contains(t, r.stderr, tc.mention)
		})
	}
}

// TestPrintCollection renders invoice show's collection sections from rows
// like the store's, with no server.
func TestPrintCollection(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	hash := strings.Repeat("ab", 32)
	settled, superseded := now.Add(-time.Minute), now.Add(-time.Hour)
	v := collectionView{
		Attempts: []store.Attempt{
			{Attempt: 1, Rail: "nwc", Outcome: "failed", Detail: "wallet offline", At: now.Add(-2 * time.Hour)},
			{Attempt: 1, Rail: "card", Outcome: "declined", At: now.Add(-2 * time.Hour)},
		},
		Payments: []store.Payment{
			{Rail: "lightning", Reference: hash, AmountMsat: 150000, ReceivedAt: settled, Applied: true},
			{Rail: "stripe", Reference: "pi_123", Amount: 500, Currency: "usd", ReceivedAt: now, RefundStatus: "to_refund"},
		},
		LightningInvoices: []store.Bolt11{
			{PaymentHash: strings.Repeat("cd", 32), AmountMsat: 140000, ExpiresAt: now.Add(-90 * time.Minute), SupersededAt: &superseded},
			{PaymentHash: hash, AmountMsat: 150000, ExpiresAt: now.Add(time.Hour), SettledAt: &settled},
			{PaymentHash: strings.Repeat("ef", 32), AmountMsat: 150000, ExpiresAt: now.Add(time.Hour)},
		},
		CardPayments: []store.CardPayment{{PaymentIntentID: "pi_123", Attempt: 1, Amount: 500, Currency: "usd", Status: "requires_payment_method", Outcome: "declined", DeclineCode: "insufficient_funds"}},
		Entitlement:  &store.Entitlement{PeriodStart: now.AddDate(0, -1, 0), PeriodEnd: now, GrantedAt: settled},
		Discount:     &discountView{Code: "SPRING", Status: "consumed"},
	}
	var out bytes.Buffer
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', 0)
	printCollection(w, v, now)
	require.NoError(t, w.Flush())
	text := out.String()
	for _, want := range []string{
		"wallet offline", "declined", "ATTEMPT", "applied", "overpayment to refund", "5.00 USD", "150000 msat",
		hash[:16] + "...", "superseded 2026-05-01T11:00:00Z", "settled 2026-05-01T11:59:00Z", "payable",
		"insufficient_funds", "entitlement", "2026-04-01T12:00:00Z -> 2026-05-01T12:00:00Z", "SPRING (consumed)",
	} {
		assert.Contains(t, text, want)
	}
	assert.Contains(t, text, hash[:16]+"...  150000", "Lightning hashes are shortened")
	assert.Contains(t, text, hash+"  150000 msat", "payment references are whole")

	out.Reset()
	w = tabwriter.NewWriter(&out, 0, 4, 2, ' ', 0)
	printCollection(w, collectionView{}, now)
	require.NoError(t, w.Flush())
	for _, want := range []string{"entitlement  none", "discount     none", "no collection attempts", "no payments", "no Lightning invoices issued", "no card charges"} {
		assert.Contains(t, out.String(), want)
	}
}

// TestInvoiceViewJSON: invoice show's JSON carries the collection, with
// lists as [] and no entitlement or discount key when there is none.
func TestInvoiceViewJSON(t *testing.T) {
	raw, err := json.Marshal(invoiceView{Invoice: store.Invoice{ID: "inv-1"}, Items: []store.Item{}, collectionView: collectionView{
		Attempts: nonNil([]store.Attempt(nil)), Payments: nonNil([]store.Payment(nil)),
		LightningInvoices: nonNil([]store.Bolt11(nil)), CardPayments: nonNil([]store.CardPayment(nil)),
	}})
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	assert.Equal(t, "inv-1", got["id"])
	for _, key := range []string{"items", "attempts", "payments", "lightning_invoices", "card_payments"} {
		assert.Equal(t, []any{}, got[key], key)
	}
	assert.NotContains(t, got, "entitlement")
	assert.NotContains(t, got, "discount")
}
