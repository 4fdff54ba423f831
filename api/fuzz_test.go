package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// errFuzzUnavailable is the fake Temporal's answer to every call.
var errFuzzUnavailable = errors.New("fuzz: no Temporal server")

// fuzzTemporal is a Temporal client that records what the api sends and
// answers every call with errFuzzUnavailable. Any method it does not
// override is the nil embedded interface's: calling it panics, which the
// fuzzer reports, so a request can reach only what is listed here.
type fuzzTemporal struct {
	client.Client
	calls int
	sent  []any
}

func (f *fuzzTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.calls++
	f.sent = append(f.sent, o.Args...)
	return nil, errFuzzUnavailable
}

func (f *fuzzTemporal) UpdateWithStartWorkflow(_ context.Context, o client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.calls++
	f.sent = append(f.sent, o.UpdateOptions.Args...)
	return nil, errFuzzUnavailable
}

func (f *fuzzTemporal) NewWithStartWorkflowOperation(client.StartWorkflowOptions, any, ...any) client.WithStartWorkflowOperation {
	return nil
}

func (f *fuzzTemporal) SignalWorkflow(_ context.Context, _, _, _ string, arg any) error {
	f.calls++
	f.sent = append(f.sent, arg)
	return errFuzzUnavailable
}

func (f *fuzzTemporal) QueryWorkflow(context.Context, string, string, string, ...any) (converter.EncodedValue, error) {
	f.calls++
	return nil, errFuzzUnavailable
}

// fuzzEndpoints are the JSON-body endpoints answered through Temporal
// alone, by the fuzzer's byte; %s is the fuzzed path id.
var fuzzEndpoints = []struct{ path, defaultID string }{
	{"/v1/tenants/%s/activities", fuzzTenant},
	{"/v1/invoices/%s/payments", "inv-1"},
	{"/v1/invoices/%s/close", "inv-1"},
	{"/v1/usage/sessions", ""},
	{"/v1/usage/sessions/%s/reports", "s1"},
	{"/v1/usage/sessions/%s/signatures", "s1"},
	{"/v1/usage/sessions/%s/end", "s1"},
}

// fuzzTenant is a valid tenant id (the public key of the scalar 2).
const fuzzTenant = "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"

// FuzzAPIRequest posts fuzzed JSON bodies (and path ids) to the api's
// endpoints that take a body and answer through Temporal (activities,
// payments, close, usage sessions), through the real routes and handlers,
// with a Temporal client that answers "unavailable". Every answer is the
// JSON error shape (the fake never lets one succeed), never a 500: a 400
// names the field that is wrong ("invalid" errors) and reached nothing;
// anything else is the 503 of the unavailable Temporal, and what the api
// sent it passes the validators the workflows apply: amounts and counts
// are not negative, ids are well-formed, the activity and the payment
// report validate.
func FuzzAPIRequest(f *testing.F) {
	for i, body := range []string{
		`{"id":"a1","type":"resource_created","resource_id":"r1","plan_id":"basic","created_at":"2026-05-01T00:00:00Z","create_tenant":true}`,
		`{"rail":"stripe","reference":"pi_1","amount":4200,"currency":"usd"}`,
		`{"status":"void","reason":"duplicate"}`,
		`{"session_id":"s1","service_id":"vpn","payer":"` + fuzzTenant + `","max_unit_price":10,"notify_dm":true}`,
		`{"id":"rep-1","seconds":60,"bytes_received":1,"bytes_sent":2}`,
		`{"event":{"id":"` + strings.Repeat("a", 64) + `","pubkey":"` + fuzzTenant + `","created_at":1,"kind":9741,"tags":[["receipt","x"]],"content":"[]","sig":"` + strings.Repeat("b", 128) + `"}}`,
		`{"report":{"id":"rep-2","seconds":1}}`,
	} {
		f.Add(uint8(i), "", []byte(body))
	}
	f.Add(uint8(0), "npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m", []byte(`{"id":"a2","type":"resource_deactivated","resource_id":"r1"}`))
	f.Add(uint8(1), "inv-2", []byte(`{"rail":"nwc","reference":"`+strings.Repeat("A", 64)+`","amount_msat":-1}`))
	f.Add(uint8(3), "", []byte(`{"session_id":"s1","service_id":" ","payer":"npub1x","max_unit_price":-1}`))
	f.Add(uint8(4), "bad/id", []byte(`{"id":" ","seconds":-1}`))
	f.Add(uint8(6), "s1", []byte(" \n"))
	f.Add(uint8(6), "s1", []byte(`{"report":null} {}`))
	f.Add(uint8(2), "inv-3", []byte(`{"status":"void","reason":"x","extra":1}`))

	f.Fuzz(func(t *testing.T, endpoint uint8, pathID string, body []byte) {
		ep := fuzzEndpoints[int(endpoint)%len(fuzzEndpoints)]
		if pathID == "" {
			pathID = ep.defaultID
		}
		target := ep.path
		if strings.Contains(target, "%s") {
			target = fmt.Sprintf(target, url.PathEscape(pathID))
		}
		fake := &fuzzTemporal{}
		s := &Server{Billing: billing.New(fake, ""), Token: testToken, StripeWebhookSecret: testWhsec,
			Now: func() time.Time { return testNow }, Logger: slog.New(slog.DiscardHandler)}
		req := httptest.NewRequest(http.MethodPost, "http://api.example"+target, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)

		var ans errorBody
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || json.Unmarshal(rec.Body.Bytes(), &ans) != nil {
			t.Fatalf("%s answered %d %q: %q", target, rec.Code, ct, rec.Body.String())
		}
		if ans.Error == "" || ans.Message == "" {
			t.Fatalf("%s answered %d without an error and a message: %q", target, rec.Code, rec.Body.String())
		}
		switch rec.Code {
		case http.StatusBadRequest:
			if ans.Error == "invalid" && ans.Field == "" {
				t.Fatalf("%s: a 400 names no field: %q", target, rec.Body.String())
			}
			if fake.calls > 0 {
				t.Fatalf("%s: refused with 400 after asking Temporal (%#v)", target, fake.sent)
			}
			return
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
			// a path id that leaves the route (a '/' or '..'), or an
			// oversized body: answered before any handler runs.
			if fake.calls > 0 {
				t.Fatalf("%s: %d after asking Temporal (%#v)", target, rec.Code, fake.sent)
			}
			return
		case http.StatusServiceUnavailable:
		default:
			t.Fatalf("%s answered %d: %q", target, rec.Code, rec.Body.String())
		}
		if fake.calls == 0 {
			t.Fatalf("%s: 503 without asking Temporal", target)
		}
		for _, arg := range fake.sent {
			if err := fuzzCheckSent(arg); err != nil {
				t.Fatalf("%s sent Temporal %#v, which its validators refuse: %v", target, arg, err)
			}
		}
	})
}

// fuzzCheckSent applies the checks a workflow makes of what the api sent.
func fuzzCheckSent(arg any) error {
	switch a := arg.(type) {
	case contract.RecordActivityRequest:
		at := testNow
		if a.CreatedAt != nil {
			at = *a.CreatedAt
		}
		return models.Activity{ID: a.ID, Type: a.Type, ResourceID: a.ResourceID, PlanID: a.PlanID, At: at}.Validate()
	case contract.MarkPaidRequest:
		return a.Validate()
	case contract.CloseInvoiceRequest:
		return a.Validate()
	case contract.UsageStartRequest:
		if err := billing.ValidUsageSessionID(a.SessionID); err != nil {
			return err
		}
		if id, err := models.ParseTenantID(string(a.Payer)); err != nil || id != a.Payer {
			return fmt.Errorf("payer %q is not a normalised tenant id (%v)", a.Payer, err)
		}
		if strings.TrimSpace(a.ServiceID) == "" || a.MaxUnitPrice < 0 {
			return fmt.Errorf("service %q, max unit price %d", a.ServiceID, a.MaxUnitPrice)
		}
		return nil
	case contract.UsageReport:
		if a.ID == "" || len(a.ID) > 128 || a.Seconds < 0 || a.BytesReceived < 0 || a.BytesSent < 0 {
			return fmt.Errorf("report %+v", a)
		}
		return nil
	case contract.UsageSignRequest:
		return billing.ValidNostrEvent(a.Event)
	}
	return fmt.Errorf("unexpected argument %T", arg)
}

// fuzzWalletEndpoints name FuzzWalletRequest's endpoints, by its byte.
var fuzzWalletEndpoints = []string{"grants", "top-ups", "withdrawals", "auto-recharge", "pay-invoices"}

// FuzzWalletRequest feeds fuzzed bodies of the wallet endpoints (POST
// .../wallet/grants, top-ups, withdrawals; PUT .../auto-recharge,
// pay-invoices) through the handlers' own parsing (parseGrant, parseTopUp,
// parseWithdrawal, decode, parsePayInvoices) and then the checks of the
// store and the billing client they reach, with a store whose database is
// unreachable and a Temporal client that answers unavailable: a value that
// passes every check fails on I/O. A refusal is a *ValidationError naming
// the field; a value that gets as far as I/O has a key of 1-200 characters
// (1-120 for a Lightning payout), an amount above zero (at most a plan's
// limit for a top-up or an auto-recharge), an auto-recharge set whole or
// not at all, and reads back the same from its own encoding.
func FuzzWalletRequest(f *testing.F) {
	for i, body := range []string{
		`{"amount":500,"key":"promo-1","expires_at":"2027-01-01T00:00:00Z","currency":"usd"}`,
		`{"amount":2000,"key":"tu-1"}`,
		`{"amount":100,"reference":"bank-42"}`,
		`{"threshold":100,"amount":1000}`,
		`{"enabled":true}`,
	} {
		f.Add(uint8(i), []byte(body))
	}
	f.Add(uint8(2), []byte(`{"amount":100,"key":"w-1","bolt11":"lnbcrt1..."}`))
	f.Add(uint8(2), []byte(`{"amount":100,"key":"k","reference":"r"}`))
	f.Add(uint8(0), []byte(`{"amount":9223372036854775807,"key":" "}`))
	f.Add(uint8(1), []byte(`{"amount":1000000000001,"key":"big"}`))
	f.Add(uint8(3), []byte(`{"threshold":null,"amount":1}`))
	f.Add(uint8(4), []byte(`{"enabled":null}`))

	pool, err := pgxpool.New(context.Background(), "postgres://fuzz@127.0.0.1:1/fuzz?connect_timeout=1&pool_max_conns=1")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(pool.Close)
	st := store.New(pool)
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		name := fuzzWalletEndpoints[int(endpoint)%len(fuzzWalletEndpoints)]
		newReq := func(b []byte) *http.Request {
			return httptest.NewRequest(http.MethodPost, "http://api.example/v1/tenants/"+fuzzTenant+"/wallet/"+name, bytes.NewReader(b))
		}
		rec := httptest.NewRecorder()
		refused := func(err error) bool {
			t.Helper()
			if err == nil {
				return false
			}
			var ve *models.ValidationError
			if errors.As(err, &ve) {
				if strings.TrimSpace(ve.Field) == "" {
					t.Fatalf("%s: refusal names no field: %v", name, err)
				}
				return true
			}
			return errors.Is(err, errTooLarge)
		}
		keyOK := func(key string, max int) {
			t.Helper()
			if k := strings.TrimSpace(key); k == "" || len(k) > max {
				t.Fatalf("%s: key %q passed the checks", name, key)
			}
		}

		switch name {
		case "grants":
			req, err := parseGrant(rec, newReq(body), fuzzTenant)
			if refused(err) || refused(fuzzIgnoreIO(st.Grant(ctx, req))) {
				return
			}
			keyOK(req.Key, 200)
			if req.Amount <= 0 {
				t.Fatalf("grant of %d passed the checks", req.Amount)
			}
			back, err := parseGrant(rec, newReq(fuzzJSON(t, grantBody{Amount: req.Amount, Key: req.Key, ExpiresAt: req.ExpiresAt, Currency: string(req.Currency)})), fuzzTenant)
			if err != nil || back.Key != req.Key || back.Amount != req.Amount || back.Currency != req.Currency ||
				(back.ExpiresAt == nil) != (req.ExpiresAt == nil) || (back.ExpiresAt != nil && !back.ExpiresAt.Equal(*req.ExpiresAt)) {
				t.Fatalf("grant does not read back: %+v -> %+v (%v)", req, back, err)
			}
		case "top-ups":
			req, err := parseTopUp(rec, newReq(body), fuzzTenant)
			if refused(err) || refused(fuzzIgnoreIO(st.CreateTopUp(ctx, req))) {
				return
			}
			keyOK(req.Key, 200)
			if req.Amount <= 0 || req.Amount > models.MaxPlanAmount {
				t.Fatalf("top-up of %d passed the checks", req.Amount)
			}
			back, err := parseTopUp(rec, newReq(fuzzJSON(t, topUpBody{Amount: req.Amount, Key: req.Key, Currency: string(req.Currency)})), fuzzTenant)
			if err != nil || back != req {
				t.Fatalf("top-up does not read back: %+v -> %+v (%v)", req, back, err)
			}
		case "withdrawals":
			manual, ln, err := parseWithdrawal(rec, newReq(body), fuzzTenant)
			if refused(err) {
				return
			}
			if ln != nil {
				fake := &fuzzTemporal{}
				if refused(fuzzIgnoreIO(billing.New(fake, "").Withdraw(ctx, *ln))) {
					if fake.calls > 0 {
						t.Fatalf("Lightning withdrawal refused after asking Temporal")
					}
					return
				}
				keyOK(ln.Key, 120)
				if ln.Amount <= 0 || ln.BOLT11 == "" || fake.calls == 0 {
					t.Fatalf("Lightning withdrawal %+v passed the checks (%d calls)", ln, fake.calls)
				}
				return
			}
			if refused(fuzzIgnoreIO(st.Withdraw(ctx, manual))) {
				return
			}
			keyOK(manual.Key, 200)
			if manual.Amount <= 0 {
				t.Fatalf("withdrawal of %d passed the checks", manual.Amount)
			}
			back, _, err := parseWithdrawal(rec, newReq(fuzzJSON(t, withdrawalBody{Amount: manual.Amount, Reference: manual.Key, Currency: string(manual.Currency)})), fuzzTenant)
			if err != nil || back != manual {
				t.Fatalf("withdrawal does not read back: %+v -> %+v (%v)", manual, back, err)
			}
		case "auto-recharge":
			var a store.AutoRecharge
			if refused(decode(rec, newReq(body), &a)) || refused(fuzzIgnoreIO(st.SetWalletAutoRecharge(ctx, fuzzTenant, a))) {
				return
			}
			if (a.Threshold == nil) != (a.Amount == nil) || (a.On() && (*a.Threshold < 0 || *a.Amount <= 0 || *a.Amount > models.MaxPlanAmount)) {
				t.Fatalf("auto-recharge %v/%v passed the checks", a.Threshold, a.Amount)
			}
		case "pay-invoices":
			v, err := parsePayInvoices(rec, newReq(body))
			if refused(err) {
				return
			}
			if v.Enabled == nil {
				t.Fatalf("pay-invoices without enabled passed the checks")
			}
		}
	})
}

// fuzzIgnoreIO keeps the error of a call that FuzzWalletRequest made
// against an unreachable database or Temporal.
func fuzzIgnoreIO[T any](_ T, err error) error { return err }

// fuzzJSON encodes v.
func fuzzJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
