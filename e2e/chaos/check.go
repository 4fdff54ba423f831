package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// report collects the invariant checks' findings.
type report struct {
	invoices, paid, doubleCharges, lostOrStuck, violations, secretHits int
	lines                                                              []string
}

func (r *report) violate(format string, args ...any) {
	r.violations++
	r.lines = append(r.lines, "VIOLATION: "+fmt.Sprintf(format, args...))
}

func (r *report) note(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

type invoiceRow struct {
	id, tenant, status string
	total              int64
	created            time.Time
}

// checkMoney checks the invariants read from the database and the sandboxes:
// charges and Lightning payments per invoice, items, totals, outcomes by
// payment method, renewals.
func (d *driver) checkMoney(ctx context.Context, db *pgxpool.Pool, r *report) error {
	tenants := map[string]*tenant{}
	ids := []string{}
	for _, t := range d.tenants {
		tenants[t.id] = t
		ids = append(ids, t.id)
	}
	rows, err := db.Query(ctx, `SELECT id, tenant_id, status, total, created_at FROM invoices WHERE tenant_id = ANY($1) ORDER BY created_at`, ids)
	if err != nil {
		return err
	}
	var invoices []invoiceRow
	for rows.Next() {
		var inv invoiceRow
		if err := rows.Scan(&inv.id, &inv.tenant, &inv.status, &inv.total, &inv.created); err != nil {
			return err
		}
		invoices = append(invoices, inv)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	r.invoices = len(invoices)
	byID := map[string]invoiceRow{}
	for _, inv := range invoices {
		byID[inv.id] = inv
		if inv.status == "paid" {
			r.paid++
		}
	}

	// Overpayments recorded (owed back), per invoice and rail family.
	refunds := map[string]map[string]int{}
	rows, err = db.Query(ctx, `SELECT invoice_id, rail FROM payments WHERE tenant_id = ANY($1) AND refund_reason IS NOT NULL`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var inv, rail string
		if err := rows.Scan(&inv, &rail); err != nil {
			return err
		}
		fam := "lightning"
		if rail == "stripe" {
			fam = "stripe"
		}
		if refunds[inv] == nil {
			refunds[inv] = map[string]int{}
		}
		refunds[inv][fam]++
	}
	if err := rows.Err(); err != nil {
		return err
	}

	// Charges per invoice, as the Stripe sandbox counts them (every
	// PaymentIntent it holds, through its API).
	charges, err := d.stripeCharges(ctx)
	if err != nil {
		return fmt.Errorf("stripe charges: %w", err)
	}
	for inv, n := range charges {
		if _, ours := byID[inv]; !ours {
			continue
		}
		if n > 1+refunds[inv]["stripe"] {
			r.doubleCharges++
			r.violate("invoice %s charged %d times on the Stripe sandbox, %d recorded as overpayment", inv, n, refunds[inv]["stripe"])
		}
	}

	// Payments per invoice on the Lightning node: its settled invoices,
	// mapped to billflow invoices by payment hash.
	settled, err := lnSettled(filepath.Join(d.cfg.data, "lnnode", "invoices.json"))
	if err != nil {
		return err
	}
	hashes := map[string]string{}
	rows, err = db.Query(ctx, `SELECT payment_hash, invoice_id FROM bolt11_invoices`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var h, inv string
		if err := rows.Scan(&h, &inv); err != nil {
			return err
		}
		hashes[h] = inv
	}
	if err := rows.Err(); err != nil {
		return err
	}
	lnPaid := map[string]int{}
	for _, h := range settled {
		if inv, ok := hashes[h]; ok {
			lnPaid[inv]++
		}
	}
	for inv, n := range lnPaid {
		if _, ours := byID[inv]; ours && n > 1+refunds[inv]["lightning"] {
			r.doubleCharges++
			r.violate("invoice %s paid %d times on the Lightning node, %d recorded as overpayment", inv, n, refunds[inv]["lightning"])
		}
	}

	// Items: on at most one invoice (one column, checked anyway by id), and
	// every invoice's total is the sum of its items.
	var dupItems int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM (SELECT id FROM invoice_items WHERE tenant_id = ANY($1) GROUP BY id HAVING count(DISTINCT invoice_id) > 1) x`, ids).Scan(&dupItems); err != nil {
		return err
	}
	if dupItems > 0 {
		r.violate("%d items are on more than one invoice", dupItems)
	}
	rows, err = db.Query(ctx, `SELECT i.id, i.total, coalesce(sum(it.amount), 0) FROM invoices i LEFT JOIN invoice_items it ON it.invoice_id = i.id
		WHERE i.tenant_id = ANY($1) GROUP BY i.id, i.total HAVING i.total <> coalesce(sum(it.amount), 0)`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var total, sum int64
		if err := rows.Scan(&id, &total, &sum); err != nil {
			return err
		}
		r.violate("invoice %s total %d != sum of its items %d", id, total, sum)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	// Outcomes by payment method, for invoices made before the run ended.
	status, suspended := map[string]string{}, map[string]time.Time{}
	rows, err = db.Query(ctx, `SELECT id, status, suspended_at FROM tenants WHERE id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, st string
		var at *time.Time
		if err := rows.Scan(&id, &st, &at); err != nil {
			return err
		}
		status[id] = st
		if at != nil {
			suspended[id] = at.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	unpaidDeclined := map[string]bool{}
	for _, inv := range invoices {
		if !inv.created.Before(d.end) {
			continue
		}
		t := tenants[inv.tenant]
		open := inv.status != "paid" && inv.status != "void" && inv.status != "uncollectible"
		switch {
		case t.method.working() && inv.status != "paid":
			r.lostOrStuck++
			r.violate("invoice %s of a %s tenant (%s) is %s, not paid", inv.id, t.method, short(t.id), inv.status)
		case !t.method.working() && open:
			unpaidDeclined[t.id] = true
		}
	}
	for id := range unpaidDeclined {
		if st := status[id]; st != "grace" && st != "suspended" {
			r.violate("tenant %s (%s) owes an invoice but is %s, not in grace or suspended", short(id), tenants[id].method, st)
		}
	}

	// Renewals: expected from the driver's activity log (those the
	// database holds: an answer lost in the chaos may still have recorded
	// it), against the renewal items.
	recorded := map[string]time.Time{}
	rows, err = db.Query(ctx, `SELECT id, created_at FROM activities WHERE tenant_id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return err
		}
		recorded[id] = at
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var log []activity
	logged := map[string]bool{}
	for _, a := range d.activities {
		logged[a.ID] = true
		at, ok := recorded[a.ID]
		switch {
		case ok && !at.Equal(a.At):
			r.violate("activity %s recorded at %s, sent at %s", a.ID, at.UTC().Format(time.RFC3339), a.At.Format(time.RFC3339))
		case ok:
			log = append(log, a)
		case a.Outcome == "recorded":
			r.violate("activity %s was acknowledged but is not in the database", a.ID)
		}
	}
	for id := range recorded {
		if !logged[id] {
			r.violate("activity %s is in the database but the driver never sent it", id)
		}
	}
	prices, err := loadPrices(filepath.Join(d.cfg.root, "config", "plans.json"))
	if err != nil {
		return err
	}
	want := expectedRenewals(log, d.cfg.period, d.end, prices, suspended)
	got := map[renewalKey]int{}
	rows, err = db.Query(ctx, `SELECT tenant_id, resource_id, period_start FROM invoice_items WHERE kind = 'renewal' AND tenant_id = ANY($1) AND period_start <= $2`, ids, d.end)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k renewalKey
		if err := rows.Scan(&k.Tenant, &k.Resource, &k.Boundary); err != nil {
			return err
		}
		k.Boundary = k.Boundary.UTC()
		got[k]++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	missing, extra := 0, 0
	for k := range want {
		if got[k] == 0 {
			missing++
			if missing <= 10 {
				r.violate("no renewal of %s/%s at %s", short(k.Tenant), k.Resource, k.Boundary.Format(time.RFC3339))
			}
		}
	}
	for k, n := range got {
		if !want[k] || n > 1 {
			extra++
			if extra <= 10 {
				r.violate("unexpected renewal (x%d) of %s/%s at %s", n, short(k.Tenant), k.Resource, k.Boundary.Format(time.RFC3339))
			}
		}
	}
	if missing > 10 || extra > 10 {
		r.violate("%d renewals missing and %d unexpected in all", missing, extra)
	}
	r.note("renewals: %d expected from the activity log (%d activities in the database of %d sent; %d tenants suspended), %d found",
		len(want), len(log), len(d.activities), len(suspended), len(got))
	return nil
}

func short(id string) string { return id[:12] }

func loadPrices(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cat struct {
		Plans []struct {
			ID     string `json:"id"`
			Amount int64  `json:"amount"`
		} `json:"plans"`
	}
	if err := json.Unmarshal(b, &cat); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]int64{}
	for _, p := range cat.Plans {
		out[p.ID] = p.Amount
	}
	return out, nil
}

// stripeCharges counts, per invoice_id metadata, the PaymentIntents whose
// money moved or is moving (succeeded or processing).
func (d *driver) stripeCharges(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	after := ""
	for {
		q := url.Values{"limit": {"100"}}
		if after != "" {
			q.Set("starting_after", after)
		}
		var page struct {
			HasMore bool `json:"has_more"`
			Data    []struct {
				ID       string            `json:"id"`
				Status   string            `json:"status"`
				Metadata map[string]string `json:"metadata"`
			} `json:"data"`
		}
		if err := d.stripe.do(ctx, http.MethodGet, "/v1/payment_intents?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		for _, pi := range page.Data {
			if pi.Status == "succeeded" || pi.Status == "processing" {
				out[pi.Metadata["invoice_id"]]++
			}
			after = pi.ID
		}
		if !page.HasMore || len(page.Data) == 0 {
			return out, nil
		}
	}
}

// lnSettled reads the sandbox node's persisted invoices: the payment hashes
// of those settled.
func lnSettled(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var invs []struct {
		Hash  [32]byte `json:"hash"`
		State int      `json:"state"`
	}
	if err := json.Unmarshal(b, &invs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []string
	for _, inv := range invs {
		if inv.State == 1 {
			out = append(out, hex.EncodeToString(inv.Hash[:]))
		}
	}
	return out, nil
}

// checkWorkflows lists every workflow: none may have failed, been
// terminated or timed out, and no secret may be in any history, search
// attribute or memo (raw, and decoded through the client's data converter
// so an encrypted payload is read too).
func (d *driver) checkWorkflows(ctx context.Context, tc client.Client, dc converter.DataConverter, secrets []secret, r *report) error {
	var token []byte
	n := 0
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 200, NextPageToken: token})
		if err != nil {
			return err
		}
		for _, info := range resp.Executions {
			n++
			wid, rid := info.GetExecution().GetWorkflowId(), info.GetExecution().GetRunId()
			switch info.GetStatus() {
			case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
				r.violate("workflow %s (run %s) is %s", wid, rid, info.GetStatus())
			}
			d.scan(r, secrets, dc, "visibility of "+wid, info)
			it := tc.GetWorkflowHistory(ctx, wid, rid, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return fmt.Errorf("history of %s: %w", wid, err)
				}
				d.scan(r, secrets, dc, fmt.Sprintf("history of %s event %d", wid, ev.GetEventId()), ev)
			}
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			break
		}
	}
	r.note("workflows: %d listed and their histories scanned", n)
	return nil
}

// secret is one value that must appear nowhere.
type secret struct {
	name  string
	forms [][]byte
}

// scan searches a proto message's wire bytes, and every payload in it
// decoded, for the secrets.
func (d *driver) scan(r *report, secrets []secret, dc converter.DataConverter, where string, m proto.Message) {
	raw, _ := proto.Marshal(m)
	blobs := [][]byte{raw}
	walkPayloads(m.ProtoReflect(), func(p *commonpb.Payload) {
		var v json.RawMessage
		if err := dc.FromPayload(p, &v); err == nil {
			blobs = append(blobs, v)
		}
	})
	for _, s := range secrets {
		for _, b := range blobs {
			if containsAny(b, s.forms) {
				r.secretHits++
				r.violate("secret %s found in %s", s.name, where)
				break
			}
		}
	}
}

func containsAny(b []byte, forms [][]byte) bool {
	for _, f := range forms {
		if len(f) > 0 && bytes.Contains(b, f) {
			return true
		}
	}
	return false
}

var payloadName = (&commonpb.Payload{}).ProtoReflect().Descriptor().FullName()

// walkPayloads calls fn on every Payload message inside m.
func walkPayloads(m protoreflect.Message, fn func(*commonpb.Payload)) {
	if m.Descriptor().FullName() == payloadName {
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			fn(p)
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkPayloads(l.Get(i).Message(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkPayloads(mv.Message(), fn)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			walkPayloads(v.Message(), fn)
		}
		return true
	})
}

// checkLogs searches every log file of the cluster tier for the secrets.
func (d *driver) checkLogs(secrets []secret, r *report) error {
	dir := filepath.Join(d.cfg.data, "logs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if containsAny(b, s.forms) {
				r.secretHits++
				r.violate("secret %s found in log %s", s.name, name)
			}
		}
	}
	r.note("logs: %d files scanned", len(names))
	return nil
}

// loadSecrets reads the cluster tier's secrets from their files: each is
// searched as written, and binary ones (macaroons) also as hex.
func (d *driver) loadSecrets() ([]secret, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(d.cfg.data, name))
		return strings.TrimSpace(string(b)), err
	}
	var out []secret
	for _, f := range []struct{ name, file string }{
		{"Stripe key", "stripe-api.key"}, {"Stripe webhook secret", "stripe-webhook.key"}, {"robot key", "robot.key"},
		{"secret key", "secret.key"}, {"api token", "api.token"}, {"outbound webhook secret", "webhook.key"},
	} {
		v, err := read(f.file)
		if err != nil {
			return nil, err
		}
		out = append(out, secret{name: f.name, forms: [][]byte{[]byte(v)}})
	}
	out = append(out, secret{name: "NWC secret", forms: [][]byte{[]byte(d.secrets.nwc)}})
	for _, k := range []string{"LNNODE_MACAROON", "LNNODE_PAYOUT_MACAROON"} {
		b, err := os.ReadFile(d.env[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out = append(out, secret{name: "macaroon", forms: [][]byte{b, []byte(hex.EncodeToString(b))}})
	}
	return out, nil
}
