package nwc_test

import (
	"bytes"
	"context"
	"github.com/billflow/billflow/internal/testkit"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/billflow/billflow/sandbox/nwcwallet"
	"github.com/billflow/billflow/sandbox/relay"
)

// waitTimeout bounds every wait; conditions are awaited, never assumed to
// hold after a fixed sleep.
const waitTimeout = 45 * time.Second

// startBalance is every test wallet's opening balance.
const startBalance = 1_000_000

// stack is a sandbox relay, a sandbox Lightning node (reached through the
// production LND client) and an NWC wallet service paying through it, all
// on 127.0.0.1.
type stack struct {
	relayURL string
	relay    *relay.Relay
	node     *lnnode.Node
	lnd      *lightning.LND
	wallet   *nwcwallet.Wallet
	logs     *syncBuffer
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct{ testkit.SyncBuffer }

func (b *syncBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startStack starts the relay, node and wallet; edit adjusts the wallet's
// options. Cleanups stop everything in reverse order.
func startStack(t *testing.T, edit func(*nwcwallet.Options)) *stack {
	t.Helper()
	s := &stack{logs: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay, node, wallet and client logs:\n%s", s.logs.String())
		}
	})
	s.relay = relay.New(relay.Options{Logger: s.logs.logger()})
	url, err := s.relay.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(s.relay.Close)
	s.relayURL = url

	s.node, err = lnnode.Start(testCtx(t), lnnode.Options{Logger: s.logs.logger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.node.Close() })
	s.lnd, err = lightning.New(s.node.ClientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.lnd.Close() })

	opts := nwcwallet.Options{
		Relays:      []string{url},
		BalanceMsat: startBalance,
		Payer:       s.node,
		Invoices:    s.lnd,
		Network:     s.node.Network(),
		Logger:      s.logs.logger(),
	}
	if edit != nil {
		edit(&opts)
	}
	s.wallet, err = nwcwallet.Start(testCtx(t), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.wallet.Close() })
	return s
}

// client mints a connection URL on the wallet, parses it as a tenant's
// stored URL would be, and returns a client for it with the secret.
func (s *stack) client(t *testing.T, opts ...nwc.Option) (*nwc.Client, string) {
	t.Helper()
	u, err := s.wallet.ConnectionURL()
	require.NoError(t, err)
	conn, err := nwc.ParseURL(u)
	require.NoError(t, err)
	opts = append([]nwc.Option{nwc.WithLogger(s.logs.logger())}, opts...)
	c, err := nwc.NewClient(conn, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, secretOf(t, u)
}

func secretOf(t *testing.T, connURL string) string {
	t.Helper()
	const key = "secret="
	i := bytes.Index([]byte(connURL), []byte(key))
	require.GreaterOrEqual(t, i, 0)
	return connURL[i+len(key) : i+len(key)+64]
}

// invoice creates an invoice on the engine's node, as billing would.
func (s *stack) invoice(t *testing.T, msat int64) lightning.Invoice {
	t.Helper()
	inv, err := s.lnd.CreateInvoice(testCtx(t), lightning.CreateInvoiceRequest{AmountMsat: msat, Memo: "billflow test", Expiry: time.Hour})
	require.NoError(t, err)
	return inv
}

// waitGoroutines waits until the goroutine count is back to at most base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
