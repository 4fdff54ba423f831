package lightning

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	macaroon "gopkg.in/macaroon.v2"
)

var (
	_ Node  = (*LND)(nil)
	_ Payer = (*LND)(nil)
)

// Defaults for Config.
const (
	// DefaultCallTimeout bounds each unary call whose context has no
	// earlier deadline.
	DefaultCallTimeout = 30 * time.Second
	// maxMemoBytes is lnd's limit (invoices.MaxMemoSize); checked here so
	// the caller gets ErrInvalidRequest instead of a node error.
	maxMemoBytes = 1024
	// maxExpiry is lnd's limit on an invoice's expiry.
	maxExpiry = 365 * 24 * time.Hour
	// listPageSize is the page size when scanning invoices (ListInvoices).
	listPageSize = 500
)

// Config says how to reach an lnd node. Exactly one of TLSCertPath and
// TLSCertPEM, and one of MacaroonPath and MacaroonHex, must be set.
type Config struct {
	// Address is the node's gRPC host:port (lnd's rpclisten, default 10009).
	Address string
	// TLSCertPath is lnd's tls.cert; TLSCertPEM the same bytes.
	TLSCertPath string
	TLSCertPEM  []byte
	// TLSServerName overrides the name checked against the certificate,
	// for nodes reached through an address the certificate does not list.
	TLSServerName string
	// MacaroonPath is a macaroon file, either lnd's binary one or hex text;
	// MacaroonHex the hex encoding. Use an invoice macaroon: it can create
	// and watch invoices but not spend.
	MacaroonPath string
	MacaroonHex  string
	// PayoutMacaroonPath or PayoutMacaroonHex, both optional, is a
	// macaroon with lnd's offchain read and write permissions (e.g. a
	// baked "offchain:read offchain:write info:read" one, never admin),
	// sent only on the router calls of Payer. Without one, PayInvoice and
	// LookupPayment return ErrPayoutsNotConfigured.
	PayoutMacaroonPath string
	PayoutMacaroonHex  string
	// Network, when set, makes CreateInvoice check every invoice the node
	// issues with ValidateBOLT11 (network, amount, expiry), so a node on the
	// wrong chain is caught before its invoice reaches a payer.
	Network *chaincfg.Params
	// CallTimeout bounds each unary call (DefaultCallTimeout if zero); a
	// shorter context deadline wins.
	CallTimeout time.Duration
}

// String describes the configuration without its secrets, so that a
// logged or printed Config (%v, %+v) never carries the macaroon.
func (c Config) String() string {
	mac := "none"
	switch {
	case c.MacaroonPath != "":
		mac = "file " + c.MacaroonPath
	case c.MacaroonHex != "":
		mac = "hex [redacted]"
	}
	payout := "none"
	switch {
	case c.PayoutMacaroonPath != "":
		payout = "file " + c.PayoutMacaroonPath
	case c.PayoutMacaroonHex != "":
		payout = "hex [redacted]"
	}
	cert := "none"
	switch {
	case c.TLSCertPath != "":
		cert = "file " + c.TLSCertPath
	case len(c.TLSCertPEM) > 0:
		cert = fmt.Sprintf("PEM (%d bytes)", len(c.TLSCertPEM))
	}
	network := "unchecked"
	if c.Network != nil {
		network = c.Network.Name
	}
	return fmt.Sprintf("lnd %s (TLS cert: %s, macaroon: %s, payout macaroon: %s, network: %s)", c.Address, cert, mac, payout, network)
}

// GoString keeps %#v as redacted as String.
func (c Config) GoString() string { return "lightning.Config{" + c.String() + "}" }

// LogValue keeps slog output as redacted as String.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// LND is a Node backed by an lnd node over lnrpc gRPC, authenticated with
// TLS and a macaroon, and a Payer over routerrpc when it has a payout
// macaroon. It is safe for concurrent use.
type LND struct {
	conn    *grpc.ClientConn
	client  lnrpc.LightningClient
	network *chaincfg.Params
	timeout time.Duration
	// payConn carries the payout macaroon and nothing else uses it, so
	// the spending credential is sent only on router calls (gRPC would
	// send both macaroons if one connection had a default and a per-call
	// one, and lnd refuses two). nil without a payout macaroon.
	payConn *grpc.ClientConn
	router  routerrpc.RouterClient
}

// New prepares a client for cfg. It reads the certificate and macaroon but
// does not connect: the connection is made by the first call (or by
// WaitReady) and re-established by gRPC after failures.
func New(cfg Config) (*LND, error) {
	if strings.TrimSpace(cfg.Address) == "" {
		return nil, fmt.Errorf("%w: lnd address is empty", ErrInvalidRequest)
	}
	pool, err := loadCertPool(cfg)
	if err != nil {
		return nil, err
	}
	mac, err := loadMacaroon(cfg.MacaroonPath, cfg.MacaroonHex, "MacaroonPath", "MacaroonHex", true)
	if err != nil {
		return nil, err
	}
	payoutMac, err := loadMacaroon(cfg.PayoutMacaroonPath, cfg.PayoutMacaroonHex, "PayoutMacaroonPath", "PayoutMacaroonHex", false)
	if err != nil {
		return nil, err
	}
	timeout := cfg.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: cfg.TLSServerName, MinVersion: tls.VersionTLS12}
	dial := func(mac []byte) (*grpc.ClientConn, error) {
		conn, err := grpc.NewClient(cfg.Address,
			grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
			grpc.WithPerRPCCredentials(macaroonCredential(hex.EncodeToString(mac))),
			// A subscription can sit idle for hours; pings make a silently
			// dropped connection fail the stream instead of hanging it. 30s is
			// above lnd's minimum client ping interval (5s).
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(32<<20)),
		)
		if err != nil {
			return nil, fmt.Errorf("lightning: gRPC client for %s: %w", cfg.Address, err)
		}
		return conn, nil
	}
	conn, err := dial(mac)
	if err != nil {
		return nil, err
	}
	l := &LND{conn: conn, client: lnrpc.NewLightningClient(conn), network: cfg.Network, timeout: timeout}
	if payoutMac != nil {
		if l.payConn, err = dial(payoutMac); err != nil {
			_ = conn.Close()
			return nil, err
		}
		l.router = routerrpc.NewRouterClient(l.payConn)
	}
	return l, nil
}

// Close releases the connections. Calls in flight fail.
func (l *LND) Close() error {
	err := l.conn.Close()
	if l.payConn != nil {
		err = errors.Join(err, l.payConn.Close())
	}
	return err
}

// WaitReady connects and completes the TLS handshake, or fails when ctx
// ends; use it to report a misconfigured node at start-up. It does not test
// the macaroon: an invoice macaroon may not call GetInfo.
func (l *LND) WaitReady(ctx context.Context) error {
	l.conn.Connect()
	for {
		state := l.conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if !l.conn.WaitForStateChange(ctx, state) {
			return fmt.Errorf("lightning: lnd not ready (last state %s): %w", state, ctx.Err())
		}
	}
}

// CreateInvoice implements Node with AddInvoice, then LookupInvoice for the
// fields AddInvoice does not return.
func (l *LND) CreateInvoice(ctx context.Context, req CreateInvoiceRequest) (Invoice, error) {
	if req.AmountMsat <= 0 {
		return Invoice{}, fmt.Errorf("%w: amount %d msat is not positive", ErrInvalidRequest, req.AmountMsat)
	}
	if len(req.Memo) > maxMemoBytes {
		return Invoice{}, fmt.Errorf("%w: memo is %d bytes, lnd allows %d", ErrInvalidRequest, len(req.Memo), maxMemoBytes)
	}
	if req.Expiry < 0 || req.Expiry > maxExpiry {
		return Invoice{}, fmt.Errorf("%w: expiry %s is outside (0, %s]", ErrInvalidRequest, req.Expiry, maxExpiry)
	}
	// lnd counts whole seconds; round up so the invoice never lives shorter
	// than asked. Zero leaves lnd's default (24h).
	expirySecs := int64((req.Expiry + time.Second - 1) / time.Second)

	callCtx, cancel := context.WithTimeout(ctx, l.timeout)
	resp, err := l.client.AddInvoice(callCtx, &lnrpc.Invoice{
		Memo:      req.Memo,
		ValueMsat: req.AmountMsat,
		Expiry:    expirySecs,
	})
	cancel()
	if err != nil {
		return Invoice{}, rpcError(ctx, "AddInvoice", err)
	}
	inv, err := l.lookup(ctx, resp.GetRHash())
	if err != nil {
		return Invoice{}, err
	}
	if inv.AmountMsat != req.AmountMsat {
		return Invoice{}, fmt.Errorf("lightning: node created invoice %s for %d msat, asked %d msat", inv.PaymentHash, inv.AmountMsat, req.AmountMsat)
	}
	if l.network != nil {
		// Checked at the node's own creation time: this guards the network
		// and amount, not the caller's clock.
		if _, err := ValidateBOLT11(inv.PaymentRequest, Expectation{Network: l.network, AmountMsat: req.AmountMsat, Now: inv.CreatedAt}); err != nil {
			return Invoice{}, fmt.Errorf("lightning: node issued an unusable invoice %s: %w", inv.PaymentHash, err)
		}
	}
	return inv, nil
}

// LookupInvoice implements Node.
func (l *LND) LookupInvoice(ctx context.Context, paymentHash string) (Invoice, error) {
	hash, err := hex.DecodeString(paymentHash)
	if err != nil || len(hash) != 32 {
		return Invoice{}, fmt.Errorf("%w: payment hash %q is not 32 hex-encoded bytes", ErrInvalidRequest, paymentHash)
	}
	return l.lookup(ctx, hash)
}

func (l *LND) lookup(ctx context.Context, hash []byte) (Invoice, error) {
	callCtx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	resp, err := l.client.LookupInvoice(callCtx, &lnrpc.PaymentHash{RHash: hash})
	if err != nil {
		if isNotFound(err) {
			return Invoice{}, fmt.Errorf("%w: %x", ErrInvoiceNotFound, hash)
		}
		return Invoice{}, rpcError(ctx, "LookupInvoice", err)
	}
	return fromRPC(resp), nil
}

// isNotFound recognises lnd's "unknown invoice": codes.NotFound since
// lnd 0.16, a plain error with this text before.
func isNotFound(err error) bool {
	st, _ := status.FromError(err)
	return st.Code() == codes.NotFound || (st.Code() == codes.Unknown && strings.Contains(st.Message(), "unable to locate invoice"))
}

// fromRPC maps lnd's invoice to billflow's. Times are whole seconds, UTC.
func fromRPC(inv *lnrpc.Invoice) Invoice {
	created := time.Unix(inv.GetCreationDate(), 0).UTC()
	out := Invoice{
		PaymentHash:    hex.EncodeToString(inv.GetRHash()),
		PaymentRequest: inv.GetPaymentRequest(),
		AmountMsat:     inv.GetValueMsat(),
		Memo:           inv.GetMemo(),
		CreatedAt:      created,
		ExpiresAt:      created.Add(time.Duration(inv.GetExpiry()) * time.Second),
		Settled:        inv.GetState() == lnrpc.Invoice_SETTLED,
		AmtPaidMsat:    inv.GetAmtPaidMsat(),
		SettleIndex:    inv.GetSettleIndex(),
		AddIndex:       inv.GetAddIndex(),
	}
	if inv.GetSettleDate() > 0 {
		out.SettledAt = time.Unix(inv.GetSettleDate(), 0).UTC()
	}
	return out
}

func loadCertPool(cfg Config) (*x509.CertPool, error) {
	pemBytes := cfg.TLSCertPEM
	switch {
	case cfg.TLSCertPath != "" && len(cfg.TLSCertPEM) > 0:
		return nil, fmt.Errorf("%w: set one of TLSCertPath and TLSCertPEM, not both", ErrInvalidRequest)
	case cfg.TLSCertPath != "":
		b, err := os.ReadFile(cfg.TLSCertPath)
		if err != nil {
			return nil, fmt.Errorf("lightning: read TLS certificate: %w", err)
		}
		pemBytes = b
	case len(pemBytes) == 0:
		return nil, fmt.Errorf("%w: no TLS certificate (TLSCertPath or TLSCertPEM)", ErrInvalidRequest)
	}
	pool := x509.NewCertPool()
	// The parse error is not wrapped: it would quote the certificate.
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%w: TLS certificate is not a PEM-encoded X.509 certificate", ErrInvalidRequest)
	}
	return pool, nil
}

// loadMacaroon returns the binary encoding of the macaroon in the file
// path or the hex text hexText (fields pathField and hexField of Config);
// nil when neither is set and the macaroon is optional. Errors never quote
// the macaroon or the decoder's view of it.
func loadMacaroon(path, hexText, pathField, hexField string, required bool) ([]byte, error) {
	var raw []byte
	switch {
	case path != "" && hexText != "":
		return nil, fmt.Errorf("%w: set one of %s and %s, not both", ErrInvalidRequest, pathField, hexField)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("lightning: read macaroon (%s): %w", pathField, err)
		}
		// lnd writes binary files; billflow's sandbox and many deployments
		// keep hex text. Binary macaroons start with a non-hex byte.
		if text := bytes.TrimSpace(b); isHex(text) {
			raw = make([]byte, hex.DecodedLen(len(text)))
			if _, err := hex.Decode(raw, text); err != nil {
				return nil, fmt.Errorf("%w: macaroon file (%s) is not valid hex", ErrInvalidRequest, pathField)
			}
		} else {
			raw = b
		}
	case hexText != "":
		b, err := hex.DecodeString(strings.TrimSpace(hexText))
		if err != nil {
			return nil, fmt.Errorf("%w: macaroon (%s) is not valid hex", ErrInvalidRequest, hexField)
		}
		raw = b
	case required:
		return nil, fmt.Errorf("%w: no macaroon (%s or %s)", ErrInvalidRequest, pathField, hexField)
	default:
		return nil, nil
	}
	var m macaroon.Macaroon
	if err := m.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("%w: macaroon (%s or %s) does not decode as a macaroon", ErrInvalidRequest, pathField, hexField)
	}
	return raw, nil
}

func isHex(b []byte) bool {
	if len(b) == 0 || len(b)%2 != 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// macaroonCredential sends the macaroon as lnd expects: hex, in the
// "macaroon" metadata entry, and only over TLS.
type macaroonCredential string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (m macaroonCredential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"macaroon": string(m)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (macaroonCredential) RequireTransportSecurity() bool { return true }
