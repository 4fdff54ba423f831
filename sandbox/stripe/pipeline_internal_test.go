package stripesandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyInUseIsConflict puts a request "in flight" under a key and sends
// the same request again: Stripe answers 409 idempotency_key_in_use and runs
// nothing. (Over the wire the window is too short to hit on purpose.)
func TestKeyInUseIsConflict(t *testing.T) {
	srv, err := Start(t.Context(), Options{APIKey: "sk_test_internal"})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	form := url.Values{"amount": {"500"}, "currency": {"usd"}, "payment_method": {CardVisa}, "confirm": {"true"},
		"payment_method_types[0]": {"card"}, "metadata[invoice_id]": {"inv-x"}}
	srv.mu.Lock()
	srv.idem["busy"] = &idemEntry{fingerprint: "POST /v1/payment_intents?" + form.Encode(), created: srv.now()}
	srv.mu.Unlock()

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/v1/payment_intents", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer sk_test_internal")
	req.Header.Set("Idempotency-Key", "busy")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct{ Error apiError }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Equal(t, "idempotency_error", body.Error.Type)
	assert.Equal(t, "idempotency_key_in_use", body.Error.Code)
	assert.Zero(t, srv.PaymentIntentCount("inv-x"))
}

func TestMaskKey(t *testing.T) {
	assert.Equal(t, "sk_test_****1234", maskKey("sk_test_abcdefgh1234"))
	assert.Equal(t, "****", maskKey("abc"))
	assert.Equal(t, "****wxyz", maskKey("abcdwxyz"))
}

func TestFormHelpers(t *testing.T) {
	v, err := url.ParseQuery("metadata[a]=1&metadata[b]=2&expand[1]=y&expand[0]=x&types[]=p&types[]=q&nested[a][b]=z")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "1", "b": "2"}, hash(v, "metadata"))
	assert.Equal(t, []string{"x", "y"}, list(v, "expand"))
	assert.Equal(t, []string{"p", "q"}, list(v, "types"))
	assert.Empty(t, hash(v, "nested"), "only one level, as the sandbox's params need")
	assert.Equal(t, "nested[a][b]", unknownParams(v, "metadata[", "expand[", "types["))
}
