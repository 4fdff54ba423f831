package paypage

import (
	"bytes"
	"encoding/json"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/paypage/links"
	"github.com/billflow/billflow/store"
)

const testKey = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

// server is a page server without a database: malformed tokens are refused
// before any lookup, which is all these tests send.
func server(t *testing.T, l Limits) http.Handler {
	li, err := links.New(nil, testKey, "https://billing.example/")
	require.NoError(t, err)
	mux := http.NewServeMux()
	(&Server{Links: li, Limits: l}).Mount(mux)
	return mux
}

func get(h http.Handler, path, addr string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestSecurityHeadersAndNotFound(t *testing.T) {
	h := server(t, Limits{})
	for _, path := range []string{"/pay/not-a-token", "/account/" + strings.Repeat("A", 43) + "!", "/pay/x/status", "/page-assets/page.css"} {
		rec := get(h, path, "192.0.2.1:1234")
		hd := rec.Header()
		require.Contains(t, hd.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
		require.Contains(t, hd.Get("Content-Security-Policy"), "script-src 'self'", path)
		require.NotContains(t, hd.Get("Content-Security-Policy"), "unsafe-inline", path)
		require.Equal(t, "no-referrer", hd.Get("Referrer-Policy"), path)
		require.Equal(t, "nosniff", hd.Get("X-Content-Type-Options"), path)
		if strings.HasPrefix(path, "/page-assets/") {
			require.Equal(t, http.StatusOK, rec.Code)
			continue
		}
		require.Equal(t, http.StatusNotFound, rec.Code, path)
	}
	rec := get(h, "/pay/x/status", "192.0.2.1:1234")
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "not_found", body["error"])
}

// Per token and per address: the HTML pages and the JSON status answer 429
// in their own shape.
func TestRateLimits(t *testing.T) {
	h := server(t, Limits{PerToken: 0.001, TokenBurst: 2, PerAddr: 0.001, AddrBurst: 3})
	tok := strings.Repeat("b", 42) // malformed: refused before any lookup
	require.Equal(t, http.StatusNotFound, get(h, "/pay/"+tok, "192.0.2.1:1").Code)
	require.Equal(t, http.StatusNotFound, get(h, "/pay/"+tok+"/status", "192.0.2.2:1").Code)
	rec := get(h, "/pay/"+tok+"/status", "192.0.2.3:1")
	require.Equal(t, http.StatusTooManyRequests, rec.Code, "third request for one token, from a third address")
	require.Contains(t, rec.Body.String(), `"error":"rate_limited"`)
	rec = get(h, "/pay/"+tok, "192.0.2.3:1")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Contains(t, rec.Header().Get("Content-Type"), "text/html")

	// One address spreading requests over tokens is bounded too.
	for i := range 3 {
		require.Equal(t, http.StatusNotFound, get(h, "/pay/"+strings.Repeat(string(rune('c'+i)), 42), "198.51.100.7:1").Code)
	}
	require.Equal(t, http.StatusTooManyRequests, get(h, "/pay/"+strings.Repeat("z", 42), "198.51.100.7:1").Code)
}

func TestTokens(t *testing.T) {
	li, err := links.New(nil, testKey, "https://billing.example/")
	require.NoError(t, err)
	a := li.Token(store.PageInvoice, "inv-1", 1)
	require.Len(t, a, links.TokenLen, "256 bits, base64url")
	require.True(t, links.WellFormed(a))
	require.Equal(t, a, li.Token(store.PageInvoice, "inv-1", 1), "derived: printable again")
	require.NotEqual(t, a, li.Token(store.PageInvoice, "inv-1", 2), "a new version after a revocation")
	require.NotEqual(t, a, li.Token(store.PageAccount, "inv-1", 1), "kinds do not share tokens")
	require.NotContains(t, a, "inv-1")
	other, err := links.New(nil, strings.Repeat("11", 32), "https://billing.example")
	require.NoError(t, err)
	require.NotEqual(t, a, other.Token(store.PageInvoice, "inv-1", 1), "another key, another token")
	require.Equal(t, "https://billing.example", li.Base())
	_, err = links.New(nil, testKey, "ftp://x")
	require.ErrorContains(t, err, "BILLFLOW_PUBLIC_URL")
	_, err = links.New(nil, "short", "https://x")
	require.ErrorContains(t, err, "BILLFLOW_SECRET_KEY")
}

func TestQRCodeIsAPNG(t *testing.T) {
	b, err := qrcode.Encode("LIGHTNING:LNBCRT1TEST", qrcode.Medium, 320)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 320, img.Bounds().Dx())
}

func TestStatusShowsNoSecrets(t *testing.T) {
	paid := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	st := statusOf(store.Invoice{ID: "inv-1", TenantID: "ab", Currency: "usd", Total: 2000, AmountPaid: 2000, Status: store.InvoicePaid,
		PaidAt: &paid, PaidRail: store.RailLightning, PaidReference: strings.Repeat("f", 64)})
	b, err := json.Marshal(st)
	require.NoError(t, err)
	require.NotContains(t, string(b), "tenant")
	require.NotContains(t, string(b), strings.Repeat("f", 64), "the reference is shortened")
	require.Equal(t, "Lightning", st.Rail)
	require.Equal(t, "0.00 USD", st.Due)
	partial := statusOf(store.Invoice{Currency: "usd", Total: 2000, AmountPaid: 500, Status: store.InvoiceAwaitingPayment})
	require.True(t, partial.Payable)
	require.Equal(t, "15.00 USD", partial.Due, "what is still due")
	require.Equal(t, "Awaiting payment", partial.StatusLabel)
}

func TestRedactPath(t *testing.T) {
	tok := strings.Repeat("q", 43)
	require.Equal(t, "/pay/qqqq…/status", RedactPath("/pay/"+tok+"/status"))
	require.Equal(t, "/account/qqqq…", RedactPath("/account/"+tok))
	require.Equal(t, "/v1/tenants/"+tok, RedactPath("/v1/tenants/"+tok), "other paths are kept")
}

func TestSameOrigin(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "https://billing.example/pay/x/card", nil)
	require.True(t, sameOrigin(req), "no Origin: not a browser's cross-site post")
	req.Header.Set("Origin", "https://billing.example")
	require.True(t, sameOrigin(req))
	req.Header.Set("Origin", "https://evil.example")
	require.False(t, sameOrigin(req))
	req.Header.Set("Origin", "null")
	require.False(t, sameOrigin(req))
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	require.True(t, sameOrigin(req), "a same-origin post under no-referrer: Origin null")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://billing.example")
	require.False(t, sameOrigin(req))
}
