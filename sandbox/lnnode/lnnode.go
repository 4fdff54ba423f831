// Package lnnode is a stand-in for the engine's Lightning node: it speaks
// the part of lnd's gRPC API that rails/lightning uses (AddInvoice,
// LookupInvoice, ListInvoices, SubscribeInvoices, GetInfo, and routerrpc's
// SendPaymentV2 and TrackPaymentV2) over TLS with lnd-format macaroons, so
// the production LND client runs against it unchanged. Its invoices are
// real BOLT11 strings signed with the node's secp256k1 key; Pay settles one
// as if a payment had arrived.
//
// It has no channels. Incoming, only invoices it issued can be paid, and
// only through Pay (in process) or the HTTP handler. Outgoing, its
// "network" is one remote payee with its own key (PayeeInvoice): the node
// pays the payee's invoices (fee 0) and fails any other destination with
// FAILURE_REASON_NO_ROUTE.
package lnnode

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/cert"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/zpay32"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"gopkg.in/macaroon-bakery.v2/bakery"
)

// Errors returned by Pay. They wrap details such as the payment hash.
var (
	// ErrUnknownInvoice: not an invoice this node issued.
	ErrUnknownInvoice = errors.New("lnnode: no such invoice on this node")
	// ErrAlreadyPaid: the invoice was settled before.
	ErrAlreadyPaid = errors.New("lnnode: invoice already paid")
	// ErrInvoiceExpired: the invoice's expiry has passed.
	ErrInvoiceExpired = errors.New("lnnode: invoice expired")
	// ErrInvalidInvoice: not a payable BOLT11 invoice for this node.
	ErrInvalidInvoice = errors.New("lnnode: invalid invoice")
)

// File names in Options.DataDir; the exported ones are what a client needs.
const (
	TLSCertFile          = "tls.cert"
	TLSKeyFile           = "tls.key"
	InvoiceMacaroonFile  = "invoice.macaroon"  // hex text
	ReadonlyMacaroonFile = "readonly.macaroon" // hex text
	// PayoutMacaroonFile (hex text) has offchain read and write and info
	// read: SendPaymentV2 and TrackPaymentV2, for withdrawal payouts.
	PayoutMacaroonFile  = "payout.macaroon"
	nodeKeyFile         = "node.key"
	macaroonRootKeyFile = "macaroon-root.key"
)

// Options configures a sandbox node. The zero value is a usable in-memory
// regtest node on a free port of 127.0.0.1.
type Options struct {
	// Network is the chain invoices are for; regtest by default.
	Network *chaincfg.Params
	// ListenAddr is the gRPC address; "127.0.0.1:0" by default.
	ListenAddr string
	// DataDir, when set, keeps the node's identity (node key, TLS key pair,
	// macaroon root key, payee key), invoices, payee invoices and outgoing
	// payments across restarts, and receives the client files tls.cert,
	// invoice.macaroon, readonly.macaroon and payout.macaroon. A
	// restarted node therefore keeps its settle indexes, which the engine
	// has persisted. Without it everything lives in memory.
	DataDir string
	// Now is the node's clock (time.Now by default); tests move it to
	// expire invoices without sleeping.
	Now func() time.Time
	// Logger receives one line per added and settled invoice; discarded by
	// default.
	Logger *slog.Logger
}

// Node is a running sandbox Lightning node.
type Node struct {
	net         *chaincfg.Params
	now         func() time.Time
	log         *slog.Logger
	dataDir     string
	key         *btcec.PrivateKey
	pubKey      string
	certPEM     []byte
	invoiceMac  string
	readonlyMac string
	payoutMac   string
	store       *store
	// payeeKey signs the remote payee's invoices; payouts holds them and
	// the node's outgoing payments.
	payeeKey *btcec.PrivateKey
	payeePub string
	payouts  *payouts
	auth     *auth
	server   *grpc.Server
	lis      net.Listener

	quit      chan struct{}
	closeOnce sync.Once
	served    chan struct{}
}

// Start starts a node and returns once it accepts gRPC connections. ctx
// bounds start-up only; the node runs until Close.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := &Node{
		net:     opts.Network,
		now:     opts.Now,
		log:     opts.Logger,
		dataDir: opts.DataDir,
		quit:    make(chan struct{}),
		served:  make(chan struct{}),
	}
	if n.net == nil {
		n.net = &chaincfg.RegressionNetParams
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	addr := opts.ListenAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if n.dataDir != "" {
		if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("lnnode: data dir: %w", err)
		}
	}

	keyBytes, err := n.secret(nodeKeyFile, func() ([]byte, error) {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(k.Serialize())), nil
	})
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(keyBytes)))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("lnnode: %s is not a hex secp256k1 private key", nodeKeyFile)
	}
	n.key, _ = btcec.PrivKeyFromBytes(raw)
	n.pubKey = hex.EncodeToString(n.key.PubKey().SerializeCompressed())

	tlsCert, err := n.tlsPair()
	if err != nil {
		return nil, err
	}

	rootKey, err := n.secret(macaroonRootKeyFile, func() ([]byte, error) {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(k)), nil
	})
	if err != nil {
		return nil, err
	}
	rootKey, err = hex.DecodeString(strings.TrimSpace(string(rootKey)))
	if err != nil || len(rootKey) != 32 {
		return nil, fmt.Errorf("lnnode: %s is not a hex 32-byte key", macaroonRootKeyFile)
	}
	if n.auth, err = newAuth(rootKey, n.log); err != nil {
		return nil, err
	}
	if n.invoiceMac, err = n.macaroon(ctx, InvoiceMacaroonFile, invoicePermissions); err != nil {
		return nil, err
	}
	if n.readonlyMac, err = n.macaroon(ctx, ReadonlyMacaroonFile, readonlyPermissions); err != nil {
		return nil, err
	}
	if n.payoutMac, err = n.macaroon(ctx, PayoutMacaroonFile, payoutPermissions); err != nil {
		return nil, err
	}
	if n.payeeKey, err = n.loadPayeeKey(); err != nil {
		return nil, err
	}
	n.payeePub = hex.EncodeToString(n.payeeKey.PubKey().SerializeCompressed())

	stateFile := ""
	if n.dataDir != "" {
		stateFile = statePath(n.dataDir)
	}
	if n.store, err = newStore(stateFile); err != nil {
		return nil, err
	}
	payoutsFile := ""
	if n.dataDir != "" {
		payoutsFile = payoutsPath(n.dataDir)
	}
	if n.payouts, err = newPayouts(payoutsFile); err != nil {
		return nil, err
	}

	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lnnode: listen on %s: %w", addr, err)
	}
	n.lis = lis
	n.server = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12})),
		grpc.ChainUnaryInterceptor(n.auth.unary),
		grpc.ChainStreamInterceptor(n.auth.stream),
		grpc.MaxRecvMsgSize(lnrpc.MaxGrpcMsgSize),
		// lnd's defaults: clients may ping every 5s, even without streams.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	)
	lnrpc.RegisterLightningServer(n.server, &rpcServer{n: n})
	routerrpc.RegisterRouterServer(n.server, &routerServer{n: n})
	go func() {
		defer close(n.served)
		// Serve returns when Close stops the server; nothing to report.
		_ = n.server.Serve(lis)
	}()
	n.log.InfoContext(ctx, "sandbox lightning node started", "addr", n.Addr(), "network", n.net.Name, "pubkey", n.pubKey)
	return n, nil
}

// Close stops the node: open streams end with Unavailable, calls in flight
// fail. Safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.quit)
		n.server.Stop()
		<-n.served
	})
	return nil
}

// String identifies the node without its secrets (a printed *Node would
// otherwise show its macaroons and key).
func (n *Node) String() string {
	return fmt.Sprintf("sandbox lnd %s (%s, %s)", n.Addr(), n.net.Name, n.pubKey)
}

// GoString keeps %#v as redacted as String.
func (n *Node) GoString() string { return n.String() }

// Addr is the gRPC address, host:port.
func (n *Node) Addr() string { return n.lis.Addr().String() }

// TLSCertPEM is the node's self-signed TLS certificate.
func (n *Node) TLSCertPEM() []byte { return append([]byte(nil), n.certPEM...) }

// MacaroonHex is a hex invoice macaroon (lnd's invoice permissions).
func (n *Node) MacaroonHex() string { return n.invoiceMac }

// ReadonlyMacaroonHex is a hex read-only macaroon (lnd's readonly
// permissions: GetInfo and lookups, no AddInvoice).
func (n *Node) ReadonlyMacaroonHex() string { return n.readonlyMac }

// PayoutMacaroonHex is a hex payout macaroon (offchain read and write,
// info read): what lightning.Config's PayoutMacaroonHex needs.
func (n *Node) PayoutMacaroonHex() string { return n.payoutMac }

// PayoutMacaroonPath is the hex payout macaroon file in DataDir ("" without).
func (n *Node) PayoutMacaroonPath() string { return n.path(PayoutMacaroonFile) }

// PubKey is the node's hex compressed public key, the payee of its invoices.
func (n *Node) PubKey() string { return n.pubKey }

// Network is the chain the node's invoices are for.
func (n *Node) Network() *chaincfg.Params { return n.net }

// TLSCertPath is the certificate file in DataDir ("" without DataDir).
func (n *Node) TLSCertPath() string { return n.path(TLSCertFile) }

// MacaroonPath is the hex invoice macaroon file in DataDir ("" without).
func (n *Node) MacaroonPath() string { return n.path(InvoiceMacaroonFile) }

// ClientConfig is what lightning.New needs to reach this node with its
// invoice macaroon and, for payouts, its payout macaroon.
func (n *Node) ClientConfig() lightning.Config {
	return lightning.Config{
		Address:           n.Addr(),
		TLSCertPEM:        n.TLSCertPEM(),
		MacaroonHex:       n.invoiceMac,
		PayoutMacaroonHex: n.payoutMac,
		Network:           n.net,
	}
}

// Pay settles an invoice this node issued, as if a payment for exactly its
// amount had arrived, and returns the hex preimage. Subscribers see the
// settlement with amt_paid_msat and the next settle index. Paying twice is
// ErrAlreadyPaid; an expired invoice is ErrInvoiceExpired.
func (n *Node) Pay(ctx context.Context, bolt11 string) (preimageHex string, err error) {
	_, preimageHex, err = n.pay(ctx, bolt11)
	return preimageHex, err
}

// pay is Pay that also returns the hex payment hash.
func (n *Node) pay(ctx context.Context, bolt11 string) (hashHex, preimageHex string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	bolt11 = strings.TrimSpace(bolt11)
	z, err := zpay32.Decode(bolt11, n.net)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrInvalidInvoice, err)
	}
	if payee := hex.EncodeToString(z.Destination.SerializeCompressed()); payee != n.pubKey {
		return "", "", fmt.Errorf("%w: payee %s is another node, and the sandbox routes nowhere", ErrUnknownInvoice, payee)
	}
	hash := *z.PaymentHash
	inv, ok := n.store.lookup(hash)
	if !ok {
		return "", "", fmt.Errorf("%w: payment hash %x", ErrUnknownInvoice, hash)
	}
	if !strings.EqualFold(bolt11, inv.PaymentRequest) {
		return "", "", fmt.Errorf("%w: not the payment request issued for %x", ErrInvalidInvoice, hash)
	}
	if inv.State == stateSettled {
		return "", "", fmt.Errorf("%w: %x (settle index %d)", ErrAlreadyPaid, hash, inv.SettleIndex)
	}
	if inv.ValueMsat <= 0 {
		return "", "", fmt.Errorf("%w: %x has no amount; Pay only pays invoices with one", ErrInvalidInvoice, hash)
	}
	now := n.now()
	// The same checks a payer's wallet makes before paying.
	if _, err := lightning.ValidateBOLT11(bolt11, lightning.Expectation{Network: n.net, AmountMsat: inv.ValueMsat, Now: now, Payee: n.pubKey}); err != nil {
		var bad *lightning.InvalidInvoiceError
		if errors.As(err, &bad) && bad.Reason == lightning.ReasonExpired {
			return "", "", fmt.Errorf("%w: %x expired at %s", ErrInvoiceExpired, hash, inv.expiresAt().UTC().Format(time.RFC3339))
		}
		return "", "", fmt.Errorf("%w: %v", ErrInvalidInvoice, err)
	}
	settled, err := n.store.settle(hash, now.Truncate(time.Second), func(cur *invoice) error {
		if cur.State == stateSettled {
			return fmt.Errorf("%w: %x (settle index %d)", ErrAlreadyPaid, hash, cur.SettleIndex)
		}
		if !now.Before(cur.expiresAt()) {
			return fmt.Errorf("%w: %x expired at %s", ErrInvoiceExpired, hash, cur.expiresAt().UTC().Format(time.RFC3339))
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	n.log.InfoContext(ctx, "invoice settled", "payment_hash", hex.EncodeToString(hash[:]), "amt_paid_msat", settled.AmtPaidMsat, "settle_index", settled.SettleIndex)
	return hex.EncodeToString(hash[:]), hex.EncodeToString(settled.Preimage[:]), nil
}

func (n *Node) path(name string) string {
	if n.dataDir == "" {
		return ""
	}
	return filepath.Join(n.dataDir, name)
}

// secret returns the content of a DataDir file, creating it with gen on
// first use; without DataDir it just generates.
func (n *Node) secret(name string, gen func() ([]byte, error)) ([]byte, error) {
	if n.dataDir != "" {
		b, err := os.ReadFile(n.path(name))
		if err == nil {
			return b, nil
		}
		if !os.IsNotExist(err) {
			return nil, fmt.Errorf("lnnode: read %s: %w", name, err)
		}
	}
	b, err := gen()
	if err != nil {
		return nil, fmt.Errorf("lnnode: generate %s: %w", name, err)
	}
	if n.dataDir != "" {
		if err := os.WriteFile(n.path(name), b, 0o600); err != nil {
			return nil, fmt.Errorf("lnnode: write %s: %w", name, err)
		}
	}
	return b, nil
}

// tlsPair loads or creates the TLS key pair, the way lnd makes its own:
// self-signed, valid for localhost, 127.0.0.1 and ::1.
func (n *Node) tlsPair() (tls.Certificate, error) {
	var certPEM, keyPEM []byte
	if n.dataDir != "" {
		c, errC := os.ReadFile(n.path(TLSCertFile))
		k, errK := os.ReadFile(n.path(TLSKeyFile))
		if errC == nil && errK == nil {
			certPEM, keyPEM = c, k
		}
	}
	if certPEM == nil {
		var err error
		certPEM, keyPEM, err = cert.GenCertPair("billflow sandbox lnd", nil, nil, true, 14*30*24*time.Hour)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("lnnode: generate TLS certificate: %w", err)
		}
		if n.dataDir != "" {
			if err := cert.WriteCertPair(n.path(TLSCertFile), n.path(TLSKeyFile), certPEM, keyPEM); err != nil {
				return tls.Certificate{}, fmt.Errorf("lnnode: write TLS certificate: %w", err)
			}
		}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("lnnode: TLS key pair in %s does not load", n.dataDir)
	}
	n.certPEM = certPEM
	return pair, nil
}

// macaroon returns the hex macaroon kept in the DataDir file if it is still
// valid for ops (so clients configured earlier keep working), or mints one.
func (n *Node) macaroon(ctx context.Context, name string, ops []bakery.Op) (string, error) {
	if n.dataDir != "" {
		if b, err := os.ReadFile(n.path(name)); err == nil {
			text := strings.TrimSpace(string(b))
			if raw, err := hex.DecodeString(text); err == nil {
				if n.auth.svc.CheckMacAuth(ctx, raw, ops, "") == nil {
					return text, nil
				}
			}
		}
	}
	mac, err := n.auth.mint(ctx, ops)
	if err != nil {
		return "", err
	}
	if n.dataDir != "" {
		if err := os.WriteFile(n.path(name), []byte(mac+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("lnnode: write %s: %w", name, err)
		}
	}
	return mac, nil
}
