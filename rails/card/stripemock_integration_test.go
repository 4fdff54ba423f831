//go:build integration

package card_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/billflow/billflow/rails/card"
)

// stripe-mock validates requests against Stripe's OpenAPI spec but keeps no
// state, so these tests check only that Stripe would accept the rail's
// request shapes; what payments do is tested against sandbox/stripe.

// startStripeMock runs the stripe-mock binary named by STRIPE_MOCK_BIN on
// free ports and returns its HTTP base URL.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("STRIPE_MOCK_BIN")
	if bin == "" {
		t.Skip("STRIPE_MOCK_BIN is not set: build stripe-mock (cd tools/stripemock && go build -o ../../.bin/stripe-mock github.com/stripe/stripe-mock) and export STRIPE_MOCK_BIN=$PWD/.bin/stripe-mock to check the card rail's request shapes against Stripe's OpenAPI spec")
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Both listeners on port 0: by default stripe-mock also takes HTTPS on
	// the fixed port 12112, which may be in use.
	cmd := exec.CommandContext(ctx, bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "start %s", bin)
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "Listening for HTTP at address: "); ok {
				addr <- strings.TrimSpace(a)
			}
		}
	}()
	wait, stop := context.WithTimeout(t.Context(), 60*time.Second)
	defer stop()
	select {
	case a := <-addr:
		return "http://" + a
	case <-wait.Done():
		t.Fatalf("stripe-mock did not report its address; stderr: %s", stderr.String())
		return ""
	}
}

// exchange is one request the rail made and stripe-mock's answer.
type exchange struct {
	method, path   string
	query, form    url.Values
	idempotencyKey string
	status         int
	body           []byte
}

// recorder is a reverse proxy in front of stripe-mock that records every
// exchange, and can hide the customer's default payment method so the
// rail's fallback (listing saved cards) is exercised too.
type recorder struct {
	url         string
	mu          sync.Mutex
	exchanges   []exchange
	hideDefault bool
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	rec := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		rec.mu.Lock()
		hide := rec.hideDefault
		rec.mu.Unlock()
		if hide && req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v1/customers/") && resp.StatusCode == http.StatusOK {
			var obj map[string]any
			if json.Unmarshal(body, &obj) == nil {
				if is, ok := obj["invoice_settings"].(map[string]any); ok {
					is["default_payment_method"] = nil
				}
				body, _ = json.Marshal(obj)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		form, _ := url.ParseQuery(string(reqBody))
		rw := &capture{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(rw, r)
		rec.mu.Lock()
		rec.exchanges = append(rec.exchanges, exchange{method: r.Method, path: r.URL.Path, query: r.URL.Query(), form: form,
			idempotencyKey: r.Header.Get("Idempotency-Key"), status: rw.status, body: rw.body.Bytes()})
		rec.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	rec.url = srv.URL
	return rec
}

// take returns and forgets the exchanges so far.
func (r *recorder) take() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.exchanges
	r.exchanges = nil
	return out
}

type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *capture) WriteHeader(status int) {
	c.status = status
	c.ResponseWriter.WriteHeader(status)
}

func (c *capture) Write(b []byte) (int, error) {
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

// requireAccepted asserts stripe-mock answered 2xx, quoting its error.
func requireAccepted(t *testing.T, ex exchange) {
	t.Helper()
	require.Less(t, ex.status, 300, "stripe-mock refused %s %s: %s", ex.method, ex.path, ex.body)
	assert.NotContains(t, string(ex.body), "invalid_request_error")
}

func TestStripeMockAcceptsRequestShapes(t *testing.T) {
	mock := startStripeMock(t)
	rec := newRecorder(t, mock)
	c, err := card.New(card.Config{APIKey: "sk_test_123", BackendURL: rec.url, Timeout: 30 * time.Second})
	require.NoError(t, err)

	t.Run("customer with a default card", func(t *testing.T) {
		pm, found, err := c.DefaultPaymentMethod(t.Context(), "cus_123")
		require.NoError(t, err)
		assert.True(t, found)
		assert.NotEmpty(t, pm)
		exs := rec.take()
		require.Len(t, exs, 1)
		requireAccepted(t, exs[0])
		assert.Equal(t, "/v1/customers/cus_123", exs[0].path)
		assert.Equal(t, []string{"invoice_settings.default_payment_method"}, exs[0].query["expand[0]"])
	})

	t.Run("customer without a default: saved cards listed", func(t *testing.T) {
		rec.mu.Lock()
		rec.hideDefault = true
		rec.mu.Unlock()
		defer func() { rec.mu.Lock(); rec.hideDefault = false; rec.mu.Unlock() }()
		_, _, err := c.DefaultPaymentMethod(t.Context(), "cus_123")
		require.NoError(t, err)
		exs := rec.take()
		require.Len(t, exs, 2)
		for _, ex := range exs {
			requireAccepted(t, ex)
		}
		assert.Equal(t, "/v1/payment_methods", exs[1].path)
		assert.Equal(t, "cus_123", exs[1].query.Get("customer"))
		assert.Equal(t, "card", exs[1].query.Get("type"))
		assert.Equal(t, "2", exs[1].query.Get("limit"))
	})

	t.Run("off-session charge", func(t *testing.T) {
		key := card.IdempotencyKey("inv-mock", 1)
		_, err := c.ChargeOffSession(t.Context(), card.ChargeRequest{CustomerID: "cus_123", PaymentMethodID: "pm_123",
			AmountMinor: 2000, Currency: "usd", InvoiceID: "inv-mock", IdempotencyKey: key})
		require.NoError(t, err)
		exs := rec.take()
		require.Len(t, exs, 1)
		ex := exs[0]
		requireAccepted(t, ex)
		assert.Equal(t, http.MethodPost, ex.method)
		assert.Equal(t, "/v1/payment_intents", ex.path)
		assert.Equal(t, key, ex.idempotencyKey, "the caller's key, not a generated one")
		want := url.Values{
			"amount": {"2000"}, "currency": {"usd"}, "customer": {"cus_123"}, "payment_method": {"pm_123"},
			"off_session": {"true"}, "confirm": {"true"}, "metadata[invoice_id]": {"inv-mock"}, "payment_method_types[0]": {"card"},
		}
		assert.Equal(t, want, ex.form, "exactly the parameters the rail means to send")
	})

	t.Run("retrieve payment intent", func(t *testing.T) {
		pi, err := c.RetrievePaymentIntent(t.Context(), "pi_123")
		require.NoError(t, err)
		assert.Equal(t, "pi_123", pi.ID)
		exs := rec.take()
		require.Len(t, exs, 1)
		requireAccepted(t, exs[0])
	})

	t.Run("control: stripe-mock does refuse a bad shape", func(t *testing.T) {
		backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
			URL: stripe.String(mock), MaxNetworkRetries: stripe.Int64(0), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		})
		sc := client.New("sk_test_123", &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
		params := &stripe.PaymentIntentParams{Amount: stripe.Int64(2000), Currency: stripe.String("usd")}
		params.AddExtra("off_sesion", "true") // misspelt
		_, err := sc.PaymentIntents.New(params)
		var se *stripe.Error
		require.ErrorAs(t, err, &se)
		assert.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type)
	})
}
