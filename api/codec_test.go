package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/billflow/billflow/payloadcodec"
)

const (
	codecToken = "codec-token-0123456789"
	uiOrigin   = "http://127.0.0.1:8233"
)

func newCodecServer(t *testing.T) (http.Handler, *payloadcodec.Codec) {
	t.Helper()
	c, err := payloadcodec.ParseKeys(payloadcodec.NewKey("k1"))
	require.NoError(t, err)
	return (&Server{Token: testToken, PayloadCodec: c, CodecToken: codecToken, CodecOrigins: []string{uiOrigin}}).Handler(), c
}

// codecBody is what the Web UI posts: protojson of common.v1.Payloads.
func codecBody(t *testing.T, payloads []*commonpb.Payload) *bytes.Reader {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	require.NoError(t, err)
	return bytes.NewReader(b)
}

func TestCodecEndpointDecodesForTheUIAndTheCLI(t *testing.T) {
	h, c := newCodecServer(t)
	plain, err := converter.GetDefaultDataConverter().ToPayload(map[string]any{"tenant": "t1", "amount": 4200})
	require.NoError(t, err)
	enc, err := c.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)

	for name, req := range map[string]func() *http.Request{
		"api token as bearer (temporal CLI --codec-auth)": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/codecs/decode", codecBody(t, enc))
			r.Header.Set("Authorization", "Bearer "+testToken)
			return r
		},
		"codec token as bearer": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/codecs/decode", codecBody(t, enc))
			r.Header.Set("Authorization", "Bearer "+codecToken)
			return r
		},
		"codec token in the path (Web UI)": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/codecs/"+codecToken+"/decode", codecBody(t, enc))
			r.Header.Set("Origin", uiOrigin)
			r.Header.Set("X-Namespace", "default")
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req())
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var out commonpb.Payloads
			require.NoError(t, protojson.Unmarshal(rec.Body.Bytes(), &out))
			require.Len(t, out.Payloads, 1)
			assert.Equal(t, string(plain.Data), string(out.Payloads[0].Data))
			assert.Equal(t, "json/plain", string(out.Payloads[0].Metadata["encoding"]))
		})
	}

	// Encode, then decode what came back.
	r := httptest.NewRequest(http.MethodPost, "/codecs/encode", codecBody(t, []*commonpb.Payload{plain}))
	r.Header.Set("Authorization", "Bearer "+codecToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(rec.Body.Bytes(), &out))
	require.NotContains(t, string(out.Payloads[0].Data), "4200")
	back, err := c.Decode(out.Payloads)
	require.NoError(t, err)
	assert.Equal(t, string(plain.Data), string(back[0].Data))
}

func TestCodecEndpointRefusesWithoutAuthorization(t *testing.T) {
	h, c := newCodecServer(t)
	enc, err := c.Encode([]*commonpb.Payload{{Data: []byte(`"secret amount"`)}})
	require.NoError(t, err)
	for name, mk := range map[string]func() *http.Request{
		"no header": func() *http.Request { return httptest.NewRequest(http.MethodPost, "/codecs/decode", codecBody(t, enc)) },
		"wrong bearer": func() *http.Request {
			return withBearer(httptest.NewRequest(http.MethodPost, "/codecs/decode", codecBody(t, enc)), "nope")
		},
		"wrong path token": func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/codecs/wrong-token/decode", codecBody(t, enc))
		},
		"api token in path": func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/codecs/"+testToken+"/decode", codecBody(t, enc))
		},
		"allowed origin alone": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/codecs/decode", codecBody(t, enc))
			r.Header.Set("Origin", uiOrigin)
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			code, body, _ := do(t, h, mk())
			assert.Equal(t, http.StatusUnauthorized, code)
			assert.Equal(t, "unauthorized", body.Error)
		})
	}
	// Without a codec token configured, no path token opens it (an empty one included).
	s := &Server{Token: testToken, PayloadCodec: c}
	code, _, _ := do(t, s.Handler(), httptest.NewRequest(http.MethodPost, "/codecs/anything/decode", codecBody(t, enc)))
	assert.Equal(t, http.StatusUnauthorized, code)
}

func withBearer(r *http.Request, tok string) *http.Request {
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestCodecEndpointAnswersCORSPreflight(t *testing.T) {
	h, _ := newCodecServer(t)
	req := httptest.NewRequest(http.MethodOptions, "/codecs/"+codecToken+"/decode", nil)
	req.Header.Set("Origin", uiOrigin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, uiOrigin, rec.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", rec.Header().Get("Access-Control-Allow-Credentials"))
	assert.Contains(t, rec.Header().Get("Access-Control-Allow-Methods"), "POST")
	for _, hdr := range []string{"Content-Type", "X-Namespace", "Authorization"} {
		assert.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), hdr)
	}

	// Another origin gets no CORS grant.
	req = httptest.NewRequest(http.MethodOptions, "/codecs/decode", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	code, body, hdr := do(t, h, req)
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "origin_not_allowed", body.Error)
	assert.Empty(t, hdr.Get("Access-Control-Allow-Origin"))

	// The actual request from the UI's origin carries the grant too.
	req = withBearer(httptest.NewRequest(http.MethodPost, "/codecs/decode", strings.NewReader(`{"payloads":[]}`)), codecToken)
	req.Header.Set("Origin", uiOrigin)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, uiOrigin, rec.Header().Get("Access-Control-Allow-Origin"))
}

func TestCodecEndpointBadRequests(t *testing.T) {
	h, _ := newCodecServer(t)
	// A payload under a key id the api does not hold: 400 naming the id.
	other, err := payloadcodec.ParseKeys(payloadcodec.NewKey("retired"))
	require.NoError(t, err)
	enc, err := other.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)
	code, body, _ := do(t, h, withBearer(httptest.NewRequest(http.MethodPost, "/codecs/decode", codecBody(t, enc)), testToken))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "codec_failed", body.Error)
	assert.Contains(t, body.Message, `key id "retired"`)

	code, body, _ = do(t, h, withBearer(httptest.NewRequest(http.MethodPost, "/codecs/decode", strings.NewReader("not json")), testToken))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "bad_request", body.Error)

	code, _, _ = do(t, h, withBearer(httptest.NewRequest(http.MethodPost, "/codecs/other", nil), testToken))
	assert.Equal(t, http.StatusNotFound, code)
	code, _, hdr := do(t, h, withBearer(httptest.NewRequest(http.MethodGet, "/codecs/decode", nil), testToken))
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "POST, OPTIONS", hdr.Get("Allow"))

	// With payloads stored in plaintext there is no endpoint.
	code, _, _ = do(t, newTestServer(t, nil), withBearer(httptest.NewRequest(http.MethodPost, "/codecs/decode", strings.NewReader(`{"payloads":[]}`)), testToken))
	assert.Equal(t, http.StatusNotFound, code)
}

// The temporal CLI's --codec-endpoint and the SDK's remote codec speak the
// protocol this endpoint serves.
func TestCodecEndpointServesTheSDKRemoteCodec(t *testing.T) {
	h, c := newCodecServer(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	remote := converter.NewRemoteDataConverter(converter.GetDefaultDataConverter(), converter.RemoteDataConverterOptions{
		Endpoint: srv.URL + "/codecs",
		ModifyRequest: func(r *http.Request) error {
			r.Header.Set("X-Namespace", "default")
			r.Header.Set("Authorization", "Bearer "+testToken)
			return nil
		},
	})
	p, err := c.DataConverter(nil).ToPayload(map[string]int{"amount": 999})
	require.NoError(t, err)
	var got map[string]int
	require.NoError(t, remote.FromPayload(p, &got))
	assert.Equal(t, 999, got["amount"])
}
