package payloadcodec

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

type invoice struct {
	Tenant string `json:"tenant"`
	Amount int64  `json:"amount"`
}

const tenant = "3aaa5eb49d18657c01b3463e0ec86c11598d723895098df4041d03a4f7f4f6fe"

func mustParse(t *testing.T, v string) *Codec {
	t.Helper()
	c, err := ParseKeys(v)
	require.NoError(t, err)
	return c
}

func TestRoundTripHidesPlaintext(t *testing.T) {
	c := mustParse(t, NewKey("k1"))
	dc := c.DataConverter(nil)
	p, err := dc.ToPayload(invoice{Tenant: tenant, Amount: 123456})
	require.NoError(t, err)
	require.Equal(t, Encoding, string(p.Metadata[converter.MetadataEncoding]))
	require.Equal(t, "k1", string(p.Metadata[MetadataKeyID]))
	require.NotContains(t, string(p.Data), tenant)
	require.NotContains(t, string(p.Data), "123456")
	require.NotContains(t, string(p.Data), "json/plain", "the inner metadata is encrypted too")
	var got invoice
	require.NoError(t, dc.FromPayload(p, &got))
	require.Equal(t, invoice{Tenant: tenant, Amount: 123456}, got)

	// Two encryptions of one value differ (a fresh nonce each time).
	p2, err := dc.ToPayload(invoice{Tenant: tenant, Amount: 123456})
	require.NoError(t, err)
	require.False(t, bytes.Equal(p.Data, p2.Data))
}

func TestRotationDecodesOldKeysEncodesWithCurrent(t *testing.T) {
	old := NewKey("2025-01")
	before := mustParse(t, old).DataConverter(nil)
	p, err := before.ToPayload("written before rotation")
	require.NoError(t, err)

	rotated := mustParse(t, NewKey("2026-11")+","+old)
	require.Equal(t, "2026-11", rotated.CurrentKeyID())
	require.Equal(t, []string{"2026-11", "2025-01"}, rotated.KeyIDs())
	var s string
	require.NoError(t, rotated.DataConverter(nil).FromPayload(p, &s))
	require.Equal(t, "written before rotation", s)
	p2, err := rotated.DataConverter(nil).ToPayload("after")
	require.NoError(t, err)
	require.Equal(t, "2026-11", string(p2.Metadata[MetadataKeyID]))
}

func TestWrongKeyAndUnknownKeyIDAreRefused(t *testing.T) {
	a := mustParse(t, NewKey("k1"))
	enc, err := a.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)

	// Same id, different key material: authentication fails.
	_, err = mustParse(t, NewKey("k1")).Decode(enc)
	require.ErrorContains(t, err, `key id "k1"`)
	require.ErrorContains(t, err, "wrong key, or the payload was altered")

	// An id the keys do not list: the error says which, and what is known.
	_, err = mustParse(t, NewKey("k2")+","+NewKey("k3")).Decode(enc)
	require.ErrorContains(t, err, `key id "k1", which BILLFLOW_PAYLOAD_KEYS does not list (it lists k2, k3)`)
}

func TestTamperingIsDetected(t *testing.T) {
	c := mustParse(t, NewKey("k1")+","+NewKey("k0"))
	enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"amount":500}`)}})
	require.NoError(t, err)
	for name, mutate := range map[string]func(p *commonpb.Payload){
		"flipped ciphertext bit": func(p *commonpb.Payload) { p.Data[len(p.Data)-20] ^= 1 },
		"flipped nonce bit":      func(p *commonpb.Payload) { p.Data[0] ^= 1 },
		"truncated":              func(p *commonpb.Payload) { p.Data = p.Data[:10] },
		"moved to another id":    func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k0") },
	} {
		t.Run(name, func(t *testing.T) {
			p := &commonpb.Payload{Metadata: map[string][]byte{}, Data: append([]byte(nil), enc[0].Data...)}
			for k, v := range enc[0].Metadata {
				p.Metadata[k] = v
			}
			mutate(p)
			_, err := c.Decode([]*commonpb.Payload{p})
			require.Error(t, err)
		})
	}
}

func TestPlaintextPayloadsPassThroughDecode(t *testing.T) {
	// Histories written before encryption, and the recorded replay fixtures.
	plain, err := converter.GetDefaultDataConverter().ToPayload(invoice{Tenant: tenant, Amount: 5})
	require.NoError(t, err)
	out, err := mustParse(t, NewKey("k1")).Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	require.Same(t, plain, out[0])
}

func TestMalformedKeysNameTheVariable(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for value, want := range map[string]string{
		"":                           "BILLFLOW_PAYLOAD_KEYS is empty",
		"   ":                        "BILLFLOW_PAYLOAD_KEYS is empty",
		"k1" + good:                  "BILLFLOW_PAYLOAD_KEYS entry 1 is not id:base64key (no colon)",
		":" + good:                   `BILLFLOW_PAYLOAD_KEYS entry 1: key id "" must be`,
		"a b:" + good:                `key id "a b" must be`,
		"k1:not base64!":             `BILLFLOW_PAYLOAD_KEYS entry 1 (key id "k1"): the key is not standard base64`,
		"k1:" + good[:20]:            "BILLFLOW_PAYLOAD_KEYS entry 1 (key id \"k1\")",
		"k1:c2hvcnQ=":                "the key is 5 bytes, want 32",
		"k1:" + good + ",k1:" + good: `BILLFLOW_PAYLOAD_KEYS lists key id "k1" twice`,
		"k1:" + good + ",k2":         "BILLFLOW_PAYLOAD_KEYS entry 2 is not id:base64key",
	} {
		_, err := ParseKeys(value)
		require.ErrorContains(t, err, want, "value %q", value)
		require.NotContains(t, err.Error(), good, "an error never repeats key material")
	}
	c, err := ParseKeys(" k1:" + good + " , k2:" + good + " ")
	require.NoError(t, err)
	require.Equal(t, []string{"k1", "k2"}, c.KeyIDs())
}

func TestFromEnv(t *testing.T) {
	_, err := FromEnv([]string{"PATH=/bin"})
	require.ErrorContains(t, err, "BILLFLOW_PAYLOAD_KEYS is not set")
	require.ErrorContains(t, err, `"plaintext"`)
	c, err := FromEnv([]string{"BILLFLOW_PAYLOAD_KEYS=plaintext"})
	require.NoError(t, err)
	require.Nil(t, c)
	_, err = FromEnv([]string{"BILLFLOW_PAYLOAD_KEYS="})
	require.ErrorContains(t, err, "BILLFLOW_PAYLOAD_KEYS is empty")
	c, err = FromEnv([]string{"BILLFLOW_PAYLOAD_KEYS=" + NewKey("env1")})
	require.NoError(t, err)
	require.Equal(t, "env1", c.CurrentKeyID())
}

func TestConfigureEncryptsPayloadsAndFailures(t *testing.T) {
	var opts client.Options
	c, err := Configure(&opts, []string{"BILLFLOW_PAYLOAD_KEYS=" + NewKey("k1")})
	require.NoError(t, err)
	require.NotNil(t, c)
	p, err := opts.DataConverter.ToPayload(invoice{Tenant: tenant, Amount: 777})
	require.NoError(t, err)
	require.Equal(t, Encoding, string(p.Metadata[converter.MetadataEncoding]))

	// A failure's message (an attempt's details) goes into an encrypted payload.
	f := opts.FailureConverter.ErrorToFailure(temporal.NewApplicationError("card declined for tenant "+tenant, "Declined"))
	require.NotContains(t, f.String(), tenant)
	back := opts.FailureConverter.FailureToError(f)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(back, &ae))
	require.Contains(t, ae.Error(), tenant)

	var plain client.Options
	c, err = Configure(&plain, []string{"BILLFLOW_PAYLOAD_KEYS=plaintext"})
	require.NoError(t, err)
	require.Nil(t, c)
	require.Nil(t, plain.DataConverter)
	require.Nil(t, plain.FailureConverter)

	_, err = Configure(&plain, nil)
	require.ErrorContains(t, err, "BILLFLOW_PAYLOAD_KEYS is not set")
}

func TestDecodeMessageDecryptsAHistoryEvent(t *testing.T) {
	c := mustParse(t, NewKey("k1"))
	dc := c.DataConverter(nil)
	in, err := dc.ToPayloads(invoice{Tenant: tenant, Amount: 42})
	require.NoError(t, err)
	ev := &historypb.HistoryEvent{Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
		WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{Input: in},
	}}
	require.NotContains(t, ev.String(), tenant)
	require.NoError(t, c.DecodeMessage(context.Background(), ev))
	require.True(t, strings.Contains(ev.String(), tenant))
}

// Every Temporal client billflow's programs, tools and tests' helpers dial
// is configured by Configure: a file that dials also calls it, so no
// process writes plaintext payloads by omission.
func TestEveryDialerConfiguresTheCodec(t *testing.T) {
	root := filepath.Join("..")
	dial := regexp.MustCompile(`client\.(Dial|DialContext|NewLazyClient|NewClient)\(`)
	var dialers []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "tools" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if dial.Match(b) {
			dialers = append(dialers, path)
			// A helper that dials with options its caller built says so
			// (the caller is then a dialer checked here too).
			if !strings.Contains(string(b), "options configured by payloadcodec.Configure in the caller") {
				require.Contains(t, string(b), "payloadcodec.Configure(", "%s dials Temporal without payloadcodec.Configure", path)
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(dialers), 5, "found the worker, api, starter, bench and testkit: %v", dialers)
}
