package lnnode

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/zpay32"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// lnd's limits and defaults for AddInvoice (lnrpc/invoicesrpc/addinvoice.go).
const (
	maxMemoBytes        = 1024
	maxInvoiceMsat      = 100_000 * 100_000_000 * 1000 // 100k BTC
	maxExpiry           = 365 * 24 * time.Hour
	defaultExpiry       = 24 * time.Hour
	defaultCLTVExpiry   = 80
	defaultListInvoices = 100
)

// rpcServer serves the subset of lnrpc.Lightning that billflow uses.
type rpcServer struct {
	lnrpc.UnimplementedLightningServer
	n *Node
}

// GetInfo implements lnrpc.LightningServer.
func (r *rpcServer) GetInfo(context.Context, *lnrpc.GetInfoRequest) (*lnrpc.GetInfoResponse, error) {
	return &lnrpc.GetInfoResponse{
		Version:        "billflow-sandbox",
		IdentityPubkey: r.n.pubKey,
		Alias:          "billflow-sandbox",
		SyncedToChain:  true,
		SyncedToGraph:  true,
		Chains:         []*lnrpc.Chain{{Chain: "bitcoin", Network: r.n.net.Name}},
		Uris:           []string{r.n.pubKey + "@" + r.n.Addr()},
	}, nil
}

// AddInvoice implements lnrpc.LightningServer: a zpay32-encoded invoice
// signed with the node key, as lnd makes it.
func (r *rpcServer) AddInvoice(ctx context.Context, req *lnrpc.Invoice) (*lnrpc.AddInvoiceResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	value, err := lnrpc.UnmarshallAmt(req.GetValue(), req.GetValueMsat())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	switch {
	case req.GetValue() < 0 || req.GetValueMsat() < 0:
		return nil, status.Errorf(codes.InvalidArgument, "payments of negative value are not allowed")
	case uint64(value) > maxInvoiceMsat:
		return nil, status.Errorf(codes.InvalidArgument, "invoice amount %d msat is too large", value)
	case len(req.GetMemo()) > maxMemoBytes:
		return nil, status.Errorf(codes.InvalidArgument, "memo too large: %d bytes (maxsize=%d)", len(req.GetMemo()), maxMemoBytes)
	case len(req.GetDescriptionHash()) != 0 && len(req.GetDescriptionHash()) != 32:
		return nil, status.Errorf(codes.InvalidArgument, "description hash is %d bytes, must be 32", len(req.GetDescriptionHash()))
	case req.GetIsAmp() || req.GetIsBlinded() || req.GetFallbackAddr() != "":
		return nil, status.Error(codes.Unimplemented, "AMP, blinded and fallback-address invoices are not served by the sandbox")
	case time.Duration(req.GetExpiry())*time.Second > maxExpiry:
		return nil, status.Errorf(codes.InvalidArgument, "expiry of %d seconds greater than max expiry of %d seconds", req.GetExpiry(), int64(maxExpiry/time.Second))
	}

	inv := &invoice{
		Memo:            req.GetMemo(),
		DescriptionHash: req.GetDescriptionHash(),
		ValueMsat:       int64(value),
		Created:         r.n.now().Truncate(time.Second),
		Expiry:          defaultExpiry,
		CLTVExpiry:      defaultCLTVExpiry,
	}
	if req.GetExpiry() > 0 {
		inv.Expiry = time.Duration(req.GetExpiry()) * time.Second
	}
	if req.GetCltvExpiry() > 0 {
		inv.CLTVExpiry = req.GetCltvExpiry()
	}
	switch len(req.GetRPreimage()) {
	case 0:
		if _, err := rand.Read(inv.Preimage[:]); err != nil {
			return nil, status.Errorf(codes.Internal, "preimage: %v", err)
		}
	case 32:
		copy(inv.Preimage[:], req.GetRPreimage())
	default:
		return nil, status.Errorf(codes.InvalidArgument, "payment preimage must be exactly 32 bytes, is %d", len(req.GetRPreimage()))
	}
	inv.Hash = sha256.Sum256(inv.Preimage[:])
	if _, err := rand.Read(inv.PaymentAddr[:]); err != nil {
		return nil, status.Errorf(codes.Internal, "payment address: %v", err)
	}
	if inv.PaymentRequest, err = r.n.encode(inv); err != nil {
		return nil, status.Errorf(codes.Internal, "encode invoice: %v", err)
	}

	exists, err := r.n.store.add(inv)
	switch {
	case exists:
		return nil, status.Error(codes.AlreadyExists, "invoice with payment hash already exists")
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	r.n.log.InfoContext(ctx, "invoice added", "payment_hash", hex.EncodeToString(inv.Hash[:]), "value_msat", inv.ValueMsat, "add_index", inv.AddIndex)
	return &lnrpc.AddInvoiceResponse{
		RHash:          inv.Hash[:],
		PaymentRequest: inv.PaymentRequest,
		AddIndex:       inv.AddIndex,
		PaymentAddr:    inv.PaymentAddr[:],
	}, nil
}

// LookupInvoice implements lnrpc.LightningServer.
func (r *rpcServer) LookupInvoice(ctx context.Context, req *lnrpc.PaymentHash) (*lnrpc.Invoice, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	raw := req.GetRHash()
	//lint:ignore SA1019 lnd still honours the deprecated hex field, so the sandbox does too
	if s := req.GetRHashStr(); s != "" {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "r_hash_str is not hex")
		}
		raw = b
	}
	if len(raw) != 32 {
		return nil, status.Errorf(codes.InvalidArgument, "payment hash must be exactly 32 bytes, is instead %d", len(raw))
	}
	inv, ok := r.n.store.lookup([32]byte(raw))
	if !ok {
		// lnd's status and text since 0.16.
		return nil, status.Error(codes.NotFound, "unable to locate invoice")
	}
	return toRPC(&inv), nil
}

// ListInvoices implements lnrpc.LightningServer with lnd's paging by add
// index: forward from index_offset (exclusive), or backwards before it.
func (r *rpcServer) ListInvoices(ctx context.Context, req *lnrpc.ListInvoiceRequest) (*lnrpc.ListInvoiceResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	limit := req.GetNumMaxInvoices()
	if limit == 0 {
		limit = defaultListInvoices
	}
	keep := func(inv *invoice) bool {
		if req.GetPendingOnly() && inv.State != stateOpen {
			return false
		}
		c := uint64(inv.Created.Unix())
		if req.GetCreationDateStart() != 0 && c < req.GetCreationDateStart() {
			return false
		}
		return req.GetCreationDateEnd() == 0 || c <= req.GetCreationDateEnd()
	}
	all := r.n.store.list()
	var page []*lnrpc.Invoice
	if req.GetReversed() {
		end := uint64(len(all))
		if off := req.GetIndexOffset(); off != 0 && off-1 < end {
			end = off - 1
		}
		for i := int(end) - 1; i >= 0 && uint64(len(page)) < limit; i-- {
			if keep(&all[i]) {
				page = append(page, toRPC(&all[i]))
			}
		}
		for i, j := 0, len(page)-1; i < j; i, j = i+1, j-1 {
			page[i], page[j] = page[j], page[i]
		}
	} else {
		for i := min(req.GetIndexOffset(), uint64(len(all))); i < uint64(len(all)) && uint64(len(page)) < limit; i++ {
			if keep(&all[i]) {
				page = append(page, toRPC(&all[i]))
			}
		}
	}
	resp := &lnrpc.ListInvoiceResponse{Invoices: page}
	if len(page) > 0 {
		resp.FirstIndexOffset = page[0].GetAddIndex()
		resp.LastIndexOffset = page[len(page)-1].GetAddIndex()
	}
	return resp, nil
}

// SubscribeInvoices implements lnrpc.LightningServer with lnd's semantics:
// a backlog of adds after add_index and settlements after settle_index (0:
// none), then every later add and settlement, in index order.
func (r *rpcServer) SubscribeInvoices(req *lnrpc.InvoiceSubscription, stream lnrpc.Lightning_SubscribeInvoicesServer) error {
	ctx := stream.Context()
	sub := r.n.store.subscribe(req.GetAddIndex(), req.GetSettleIndex())
	for {
		events, wait := sub.next()
		for _, ev := range events {
			if err := stream.Send(toRPC(&ev.inv)); err != nil {
				return err
			}
		}
		if wait == nil {
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-r.n.quit:
			return status.Error(codes.Unavailable, "node shutting down")
		}
	}
}

// encode makes the BOLT11 string for inv, signed with the node key over
// SHA-256 of the invoice data, as lnd's node signer does.
func (n *Node) encode(inv *invoice) (string, error) { return n.encodeWith(n.key, inv) }

// encodeWith is encode signed by key (the node's or the payee's).
func (n *Node) encodeWith(key *btcec.PrivateKey, inv *invoice) (string, error) {
	features := lnwire.NewFeatureVector(lnwire.NewRawFeatureVector(
		lnwire.TLVOnionPayloadRequired, lnwire.PaymentAddrRequired, lnwire.MPPOptional,
	), lnwire.Features)
	opts := []func(*zpay32.Invoice){
		zpay32.Expiry(inv.Expiry),
		zpay32.CLTVExpiry(inv.CLTVExpiry),
		zpay32.PaymentAddr(inv.PaymentAddr),
		zpay32.Features(features),
	}
	if inv.ValueMsat > 0 {
		opts = append(opts, zpay32.Amount(lnwire.MilliSatoshi(inv.ValueMsat)))
	}
	if len(inv.DescriptionHash) == 32 {
		opts = append(opts, zpay32.DescriptionHash([32]byte(inv.DescriptionHash)))
	} else {
		opts = append(opts, zpay32.Description(inv.Memo))
	}
	z, err := zpay32.NewInvoice(n.net, inv.Hash, inv.Created, opts...)
	if err != nil {
		return "", err
	}
	return z.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(key, chainhash.HashB(msg), true)
	}})
}

// toRPC renders an invoice as lnd's CreateRPCInvoice does (the fields
// billflow and common clients read).
func toRPC(inv *invoice) *lnrpc.Invoice {
	out := &lnrpc.Invoice{
		Memo:            inv.Memo,
		RPreimage:       append([]byte(nil), inv.Preimage[:]...),
		RHash:           append([]byte(nil), inv.Hash[:]...),
		Value:           inv.ValueMsat / 1000,
		ValueMsat:       inv.ValueMsat,
		CreationDate:    inv.Created.Unix(),
		PaymentRequest:  inv.PaymentRequest,
		DescriptionHash: inv.DescriptionHash,
		Expiry:          int64(inv.Expiry / time.Second),
		CltvExpiry:      inv.CLTVExpiry,
		AddIndex:        inv.AddIndex,
		SettleIndex:     inv.SettleIndex,
		AmtPaidSat:      inv.AmtPaidMsat / 1000,
		AmtPaidMsat:     inv.AmtPaidMsat,
		PaymentAddr:     append([]byte(nil), inv.PaymentAddr[:]...),
		State:           lnrpc.Invoice_OPEN,
	}
	if inv.State == stateSettled {
		out.State = lnrpc.Invoice_SETTLED
		//lint:ignore SA1019 deprecated, but lnd still fills it for older clients
		out.Settled = true
		out.SettleDate = inv.SettleDate.Unix()
		//lint:ignore SA1019 deprecated, but lnd still fills it (in msat) for older clients
		out.AmtPaid = inv.AmtPaidMsat
	}
	return out
}
