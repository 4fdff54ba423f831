package lnnode

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lightningnetwork/lnd/macaroons"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gopkg.in/macaroon-bakery.v2/bakery"
)

// Permissions as lnd defines them (rpcserver.go): the sandbox checks the
// same entity/action pairs so that a macaroon which works here works on lnd.
var (
	invoicesRead  = bakery.Op{Entity: "invoices", Action: "read"}
	invoicesWrite = bakery.Op{Entity: "invoices", Action: "write"}
	infoRead      = bakery.Op{Entity: "info", Action: "read"}
	offchainRead  = bakery.Op{Entity: "offchain", Action: "read"}
	offchainWrite = bakery.Op{Entity: "offchain", Action: "write"}

	// invoicePermissions are those of lnd's invoice.macaroon.
	invoicePermissions = []bakery.Op{
		invoicesRead, invoicesWrite,
		{Entity: "address", Action: "read"}, {Entity: "address", Action: "write"},
		{Entity: "onchain", Action: "read"},
	}
	// readonlyPermissions are those of lnd's readonly.macaroon.
	readonlyPermissions = []bakery.Op{
		infoRead, invoicesRead,
		{Entity: "onchain", Action: "read"}, offchainRead,
		{Entity: "address", Action: "read"}, {Entity: "message", Action: "read"},
		{Entity: "peers", Action: "read"}, {Entity: "signer", Action: "read"},
		{Entity: "macaroon", Action: "read"},
	}

	// payoutPermissions are those of the sandbox's payout.macaroon: what
	// billflow's payouts need (lnd bakes it with
	// `lncli bakemacaroon offchain:read offchain:write info:read`).
	payoutPermissions = []bakery.Op{offchainRead, offchainWrite, infoRead}

	// methodPermissions lists the lnrpc and routerrpc methods the sandbox serves and what
	// each requires; any other method is refused as unimplemented.
	methodPermissions = map[string][]bakery.Op{
		"/lnrpc.Lightning/GetInfo":           {infoRead},
		"/lnrpc.Lightning/AddInvoice":        {invoicesWrite},
		"/lnrpc.Lightning/LookupInvoice":     {invoicesRead},
		"/lnrpc.Lightning/ListInvoices":      {invoicesRead},
		"/lnrpc.Lightning/SubscribeInvoices": {invoicesRead},
		"/routerrpc.Router/SendPaymentV2":    {offchainWrite},
		"/routerrpc.Router/TrackPaymentV2":   {offchainRead},
	}
)

// rootKeyStore is a bakery.RootKeyStore with the single root key lnd calls
// DefaultRootKeyID ("0"); it lives in memory or in the node's data dir.
type rootKeyStore struct{ key []byte }

// Get implements bakery.RootKeyStore.
func (r rootKeyStore) Get(_ context.Context, id []byte) ([]byte, error) {
	if !bytes.Equal(id, macaroons.DefaultRootKeyID) {
		return nil, bakery.ErrNotFound
	}
	return r.key, nil
}

// RootKey implements bakery.RootKeyStore.
func (r rootKeyStore) RootKey(context.Context) ([]byte, []byte, error) {
	return r.key, macaroons.DefaultRootKeyID, nil
}

// auth mints and checks macaroons with lnd's own macaroon service.
type auth struct {
	svc *macaroons.Service
	log *slog.Logger
}

func newAuth(rootKey []byte, log *slog.Logger) (*auth, error) {
	svc, err := macaroons.NewService(rootKeyStore{key: rootKey}, "lnd", false, macaroons.IPLockChecker)
	if err != nil {
		return nil, fmt.Errorf("lnnode: macaroon service: %w", err)
	}
	return &auth{svc: svc, log: log}, nil
}

// mint returns a new macaroon with ops, hex encoded as lnd clients send it.
func (a *auth) mint(ctx context.Context, ops []bakery.Op) (string, error) {
	m, err := a.svc.NewMacaroon(ctx, macaroons.DefaultRootKeyID, ops...)
	if err != nil {
		return "", fmt.Errorf("lnnode: mint macaroon: %w", err)
	}
	b, err := m.M().MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("lnnode: encode macaroon: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// check authorises a call. The status it returns names the failure only:
// neither the presented macaroon nor the verifier's diagnosis (which can
// quote caveats) reaches the caller.
func (a *auth) check(ctx context.Context, method string) error {
	ops, ok := methodPermissions[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "%s is not served by the billflow sandbox node", method)
	}
	if _, err := macaroons.RawMacaroonFromContext(ctx); err != nil {
		return status.Error(codes.Unauthenticated, "expected 1 macaroon")
	}
	err := a.svc.ValidateMacaroon(ctx, ops, method)
	if err == nil {
		return nil
	}
	a.log.DebugContext(ctx, "macaroon refused", "method", method, "err", err)
	if errors.Is(err, bakery.ErrPermissionDenied) {
		return status.Errorf(codes.PermissionDenied, "permission denied for %s", method)
	}
	return status.Error(codes.PermissionDenied, "macaroon verification failed")
}

func (a *auth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *auth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
