//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/payloadcodec"
	"github.com/billflow/billflow/workflows"
)

// rawHistory reads a workflow's history with a client that has no codec:
// the payloads as Temporal stores them.
func rawHistory(t *testing.T, raw client.Client, workflowID string) []*historypb.HistoryEvent {
	t.Helper()
	iter := raw.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	var out []*historypb.HistoryEvent
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		out = append(out, ev)
	}
	require.NotEmpty(t, out, workflowID)
	return out
}

// Payloads are encrypted at rest: the tenant's and the invoice's histories,
// read from the server without the codec, hold no tenant id, amount or
// payment reference in any payload (inputs, update arguments and results,
// activity inputs and results, memos, failures), every payload names the
// current key; the search attributes stay plaintext by design. The api's
// codec endpoint decodes them, for the temporal CLI (--codec-endpoint) as
// for the Web UI, and refuses without authorization.
func TestPayloadsEncryptedAtRestAndDecodedByTheCodecEndpoint(t *testing.T) {
	ctx := context.Background()
	codec := testkit.PayloadCodec(t)
	require.NotNil(t, codec, "the integration tier runs with payloads encrypted (testkit sets %s)", payloadcodec.EnvKeys)
	s := newStack(t)
	s.startWorker()
	tenant := testkit.NewTenantID(t)
	const period = 10 * time.Second
	_, err := s.billing.CreateTenant(ctx, billing.CreateTenantRequest{Tenant: string(tenant), Period: period})
	require.NoError(t, err)
	anchor := time.Now().UTC().Truncate(time.Second)
	res, err := s.billing.RecordActivity(ctx, string(tenant), billing.Activity{ID: "codec-1", Type: models.ResourceCreated, ResourceID: "relay-codec", PlanID: "pro", CreatedAt: anchor})
	require.NoError(t, err)
	require.Equal(t, int64(2000), res.Item.Amount)
	s1 := models.Schedule{Anchor: anchor, Fixed: period}.Boundary(1)
	s.waitFor("the first boundary invoiced", 2*period+30*time.Second, func() (bool, error) {
		return s.count(`SELECT count(*) FROM invoices WHERE tenant_id=$1`, tenant) > 0 &&
			s.count(`SELECT count(*) FROM invoice_items WHERE tenant_id=$1 AND kind='renewal' AND period_start=$2 AND invoice_id IS NOT NULL`, tenant, s1) == 1, nil
	})
	invoices, err := s.store.ListInvoices(ctx, tenant)
	require.NoError(t, err)
	inv := invoices[len(invoices)-1]
	const reference = "wire-codec-7f3a91"
	_, err = s.billing.MarkInvoicePaid(ctx, inv.ID, "manual", reference)
	require.NoError(t, err)

	raw, err := client.Dial(client.Options{HostPort: os.Getenv("TEMPORAL_ADDRESS"), Namespace: "default"})
	require.NoError(t, err)
	t.Cleanup(raw.Close)
	forbidden := []string{string(tenant), reference, "relay-codec", "codec-1", `"amount"`, "2000", inv.ID}
	var sample []*commonpb.Payload
	for _, id := range []string{workflows.TenantWorkflowID(tenant), contract.InvoiceWorkflowID(inv.ID)} {
		n := 0
		for _, ev := range rawHistory(t, raw, id) {
			require.NoError(t, proxy.VisitPayloads(ctx, ev, proxy.VisitPayloadsOptions{
				SkipSearchAttributes: true,
				Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
					for _, p := range ps {
						n++
						require.Equal(t, payloadcodec.Encoding, string(p.GetMetadata()["encoding"]), "%s event %d (%s): a payload is not encrypted", id, ev.GetEventId(), ev.GetEventType())
						require.Equal(t, codec.CurrentKeyID(), string(p.GetMetadata()[payloadcodec.MetadataKeyID]))
						for _, f := range forbidden {
							require.False(t, bytes.Contains(p.GetData(), []byte(f)), "%s event %d (%s): %q in plaintext", id, ev.GetEventId(), ev.GetEventType(), f)
						}
						sample = append(sample, p)
					}
					return ps, nil
				},
			}))
			// Failure messages and stack traces move into the encrypted
			// attributes payload (EncodeCommonAttributes).
			for _, f := range []interface{ GetMessage() string }{
				ev.GetActivityTaskFailedEventAttributes().GetFailure(), ev.GetWorkflowExecutionFailedEventAttributes().GetFailure(),
			} {
				if f != nil && f.GetMessage() != "" {
					require.Equal(t, "Encoded failure", f.GetMessage(), "%s event %d", id, ev.GetEventId())
				}
			}
		}
		require.Positive(t, n, "%s has payloads", id)
	}
	// What stays plaintext, for listing: the search attributes.
	desc, err := raw.DescribeWorkflowExecution(ctx, workflows.TenantWorkflowID(tenant), "")
	require.NoError(t, err)
	sa := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["BillingTenant"]
	require.NotNil(t, sa, "BillingTenant is a search attribute of the tenant workflow")
	require.Contains(t, string(sa.GetData()), string(tenant), "search attributes are plaintext by design")

	// The codec endpoint, as the api serves it.
	const token, codecToken = "e2e-api-token", "e2e-codec-token-0123456789"
	const origin = "http://127.0.0.1:8233"
	ts := httptest.NewServer((&api.Server{Billing: s.billing, Store: s.store, Token: token,
		PayloadCodec: codec, CodecToken: codecToken, CodecOrigins: []string{origin}}).Handler())
	t.Cleanup(ts.Close)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: sample})
	require.NoError(t, err)
	post := func(path string, hdr map[string]string) (int, []byte) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	code, _ := post("/codecs/decode", map[string]string{"X-Namespace": "default"})
	require.Equal(t, http.StatusUnauthorized, code, "no token, nothing decoded")
	code, _ = post("/codecs/decode", map[string]string{"Authorization": "Bearer wrong"})
	require.Equal(t, http.StatusUnauthorized, code)
	// The Web UI's request: the codec token in the endpoint's path, its origin.
	code, out := post("/codecs/"+codecToken+"/decode", map[string]string{"X-Namespace": "default", "Origin": origin, "Content-Type": "application/json"})
	require.Equal(t, http.StatusOK, code, string(out))
	var decoded commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(out, &decoded))
	require.Len(t, decoded.Payloads, len(sample))
	var all strings.Builder
	for _, p := range decoded.Payloads {
		all.Write(p.GetData())
	}
	require.Contains(t, all.String(), string(tenant), "decoded payloads are readable")
	require.Contains(t, all.String(), reference)
	// Its CORS preflight.
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, ts.URL+"/codecs/"+codecToken+"/decode", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))

	// The temporal CLI reads the history through the endpoint.
	cli := os.Getenv("TEMPORAL_CLI")
	if cli == "" {
		t.Log("TEMPORAL_CLI is not set: skipping the temporal CLI half")
		return
	}
	show := func(extra ...string) string {
		args := append([]string{"workflow", "show", "--disable-config-file", "--address", os.Getenv("TEMPORAL_ADDRESS"),
			"--namespace", "default", "--workflow-id", contract.InvoiceWorkflowID(inv.ID), "--output", "json"}, extra...)
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Env = append(os.Environ(), "TEMPORAL_CODEC_ENDPOINT=", "TEMPORAL_CODEC_AUTH=")
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, string(b))
		require.True(t, json.Valid(b) || len(b) > 0)
		return string(b)
	}
	// -o json prints payload bytes in base64: compare encodings.
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	plain := show()
	require.Contains(t, plain, b64(payloadcodec.Encoding), "without the codec the CLI shows ciphertext")
	decodedOut := show("--codec-endpoint", ts.URL+"/codecs", "--codec-auth", "Bearer "+token)
	// (This CLI leaves user metadata, the events' summaries, as stored.)
	require.Greater(t, strings.Count(decodedOut, b64("json/plain")), strings.Count(plain, b64("json/plain")),
		"with --codec-endpoint the CLI shows the decoded payloads (plain ones are the search attributes)")
	require.Less(t, strings.Count(decodedOut, b64(payloadcodec.Encoding)), strings.Count(plain, b64(payloadcodec.Encoding)))
}
