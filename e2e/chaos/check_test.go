package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
)

// startedWith is a history event whose workflow input is v, encoded by dc.
func startedWith(t *testing.T, dc converter.DataConverter, v any) *historypb.HistoryEvent {
	t.Helper()
	p, err := dc.ToPayload(v)
	require.NoError(t, err)
	return &historypb.HistoryEvent{EventId: 1, Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
		WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			Input: &commonpb.Payloads{Payloads: []*commonpb.Payload{p}},
			Memo:  &commonpb.Memo{Fields: map[string]*commonpb.Payload{"note": p}},
		}}}
}

// TestScanFindsSecretsInPayloads: a secret in a payload is found in the
// raw history, and also behind a codec (compressed here, encrypted with
// the payload codec), where only the decoded payload shows it.
func TestScanFindsSecretsInPayloads(t *testing.T) {
	secrets := []secret{{name: "NWC secret", forms: [][]byte{[]byte("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0")}}}
	in := map[string]string{"url": "nostr+walletconnect://x?secret=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"}
	var d driver

	plain := converter.GetDefaultDataConverter()
	var r report
	d.scan(&r, secrets, plain, "plain", startedWith(t, plain, in))
	assert.Equal(t, 1, r.secretHits, "one hit per place")

	coded := converter.NewCodecDataConverter(plain, converter.NewZlibCodec(converter.ZlibCodecOptions{AlwaysEncode: true}))
	ev := startedWith(t, coded, in)
	var raw report
	d.scan(&raw, secrets, plain, "coded, read raw", ev)
	assert.Equal(t, 0, raw.secretHits, "the codec hides it from a raw read")
	var decoded report
	d.scan(&decoded, secrets, coded, "coded, decoded", ev)
	assert.Equal(t, 1, decoded.secretHits)

	var clean report
	d.scan(&clean, secrets, plain, "clean", startedWith(t, plain, map[string]string{"tenant": "abc"}))
	assert.Equal(t, 0, clean.secretHits)
	assert.Zero(t, clean.violations)
}
