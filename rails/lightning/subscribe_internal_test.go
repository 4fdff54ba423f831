package lightning

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// These tests script lnd's answers to reach paths a live node only takes
// under races: settlements landing between the ListInvoices scan and the
// stream's registration, pagination, duplicates and a closed stream.

// fakeLightning answers the three calls SubscribeSettled makes; any other
// call panics on the nil embedded interface.
type fakeLightning struct {
	lnrpc.LightningClient

	mu         sync.Mutex
	lists      [][]*lnrpc.Invoice // successive ListInvoices answers (offset-paged)
	listCalls  []uint64           // index offsets asked for
	streams    [][]*lnrpc.Invoice // successive SubscribeInvoices streams
	subscribed []uint64           // settle indexes asked for
	addIndexes []uint64           // add indexes asked for
	eof        bool               // end streams with io.EOF once drained
}

func (f *fakeLightning) ListInvoices(_ context.Context, req *lnrpc.ListInvoiceRequest, _ ...grpc.CallOption) (*lnrpc.ListInvoiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listCalls = append(f.listCalls, req.GetIndexOffset())
	if len(f.lists) == 0 {
		return &lnrpc.ListInvoiceResponse{}, nil
	}
	// Page by add index, as lnd does: after index_offset, at most the max.
	all := f.lists[0]
	var page []*lnrpc.Invoice
	for _, inv := range all {
		if inv.GetAddIndex() > req.GetIndexOffset() && uint64(len(page)) < req.GetNumMaxInvoices() {
			page = append(page, inv)
		}
	}
	resp := &lnrpc.ListInvoiceResponse{Invoices: page}
	if len(page) > 0 {
		resp.FirstIndexOffset = page[0].GetAddIndex()
		resp.LastIndexOffset = page[len(page)-1].GetAddIndex()
	} else {
		f.lists = f.lists[1:] // this scan is over; the next sees the next list
	}
	return resp, nil
}

func (f *fakeLightning) SubscribeInvoices(ctx context.Context, req *lnrpc.InvoiceSubscription, _ ...grpc.CallOption) (lnrpc.Lightning_SubscribeInvoicesClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subscribed = append(f.subscribed, req.GetSettleIndex())
	f.addIndexes = append(f.addIndexes, req.GetAddIndex())
	var msgs []*lnrpc.Invoice
	if len(f.streams) > 0 {
		msgs, f.streams = f.streams[0], f.streams[1:]
	}
	return &fakeStream{ctx: ctx, msgs: msgs, eof: f.eof}, nil
}

type fakeStream struct {
	grpc.ClientStream
	ctx  context.Context
	msgs []*lnrpc.Invoice
	eof  bool
}

func (s *fakeStream) Recv() (*lnrpc.Invoice, error) {
	if len(s.msgs) > 0 {
		m := s.msgs[0]
		s.msgs = s.msgs[1:]
		return m, nil
	}
	if s.eof {
		return nil, io.EOF
	}
	<-s.ctx.Done()
	return nil, status.FromContextError(s.ctx.Err()).Err()
}

func settledInv(add, settle uint64) *lnrpc.Invoice {
	return &lnrpc.Invoice{
		RHash: []byte{byte(add)}, AddIndex: add, SettleIndex: settle, State: lnrpc.Invoice_SETTLED,
		ValueMsat: 1000, AmtPaidMsat: 1000, CreationDate: 1, SettleDate: 2, Expiry: 60,
	}
}

func openInv(add uint64) *lnrpc.Invoice {
	return &lnrpc.Invoice{RHash: []byte{byte(add)}, AddIndex: add, State: lnrpc.Invoice_OPEN}
}

// collect runs SubscribeSettled until want invoices arrived, returning
// their settle indexes.
func collect(t *testing.T, f *fakeLightning, after uint64, want int) ([]uint64, error) {
	t.Helper()
	l := &LND{client: f, timeout: time.Minute}
	var got []uint64
	done := errors.New("collected")
	err := l.SubscribeSettled(t.Context(), after, func(inv Invoice) error {
		got = append(got, inv.SettleIndex)
		if len(got) == want {
			return done
		}
		return nil
	})
	if errors.Is(err, done) {
		err = nil
	}
	return got, err
}

func TestFromZeroRescansOnceLNDRegisteredTheStream(t *testing.T) {
	f := &fakeLightning{
		// First scan: three open invoices. Second scan, once the stream is
		// registered: two settled in between, index 1 on the second one.
		lists: [][]*lnrpc.Invoice{
			{openInv(1), openInv(2), openInv(3)},
			{settledInv(1, 2), settledInv(2, 1), openInv(3)},
		},
		streams: [][]*lnrpc.Invoice{
			// Subscribed with add_index 2: lnd first replays the add of
			// invoice 3, proving registration; settlements 1 and 2 came
			// before it and are not on this stream.
			{openInv(3)},
			// Resumed after index 1: lnd replays 2, then a live 3.
			{settledInv(1, 2), settledInv(3, 3)},
		},
	}
	got, err := collect(t, f, 0, 3)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3}, got)
	assert.Equal(t, []uint64{0, 1}, f.subscribed)
	assert.Equal(t, []uint64{2, 0}, f.addIndexes, "add_index marks registration")
}

func TestFromZeroResumesWhenAGapShows(t *testing.T) {
	f := &fakeLightning{
		lists: [][]*lnrpc.Invoice{
			{openInv(1), openInv(2), openInv(3)},
			{openInv(1), openInv(2), openInv(3)}, // rescan at registration
			{settledInv(1, 2), settledInv(2, 1), settledInv(3, 3)},
		},
		streams: [][]*lnrpc.Invoice{
			{openInv(3), settledInv(3, 3)}, // 1 and 2 missing: a gap
			{settledInv(1, 2), settledInv(3, 3)},
		},
	}
	got, err := collect(t, f, 0, 3)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2, 3}, got)
	assert.Equal(t, []uint64{0, 1}, f.subscribed)
}

func TestFromZeroOnAnEmptyNodeProbesUntilRegistered(t *testing.T) {
	f := &fakeLightning{
		// The node had no invoice; one was added and paid before the
		// stream registered, and nothing follows: only a probe finds it.
		lists: [][]*lnrpc.Invoice{
			{},
			{settledInv(1, 1)},
		},
		streams: [][]*lnrpc.Invoice{
			{}, // silent
			{settledInv(2, 2)},
		},
	}
	got, err := collect(t, f, 0, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2}, got)
	assert.Equal(t, []uint64{0, 1}, f.subscribed)
	assert.Equal(t, []uint64{0, 0}, f.addIndexes, "lnd cannot replay an add for fewer than two invoices")
}

func TestFromZeroOnAnEmptyNodeFollowsLiveSettlements(t *testing.T) {
	f := &fakeLightning{
		streams: [][]*lnrpc.Invoice{{openInv(1), settledInv(1, 1), openInv(2), settledInv(2, 2)}},
	}
	got, err := collect(t, f, 0, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2}, got)
	assert.Equal(t, []uint64{0}, f.subscribed)
}

func TestFromZeroScansPagesForSettleIndexOne(t *testing.T) {
	var invs []*lnrpc.Invoice
	for add := uint64(1); add <= 2*listPageSize+3; add++ {
		invs = append(invs, openInv(add))
	}
	invs[2*listPageSize+1] = settledInv(2*listPageSize+2, 1)
	f := &fakeLightning{
		lists:   [][]*lnrpc.Invoice{invs},
		streams: [][]*lnrpc.Invoice{{settledInv(9999, 2)}},
	}
	got, err := collect(t, f, 0, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2}, got)
	assert.Equal(t, []uint64{0, listPageSize, 2 * listPageSize}, f.listCalls, "stops at the page holding index 1")
	assert.Equal(t, []uint64{1}, f.subscribed)
}

func TestStreamSkipsOpenInvoicesAndRepeatedIndexes(t *testing.T) {
	f := &fakeLightning{streams: [][]*lnrpc.Invoice{{
		settledInv(1, 5), openInv(8), settledInv(1, 5), settledInv(2, 4), settledInv(3, 6),
	}}}
	got, err := collect(t, f, 4, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint64{5, 6}, got)
}

func TestClosedStreamIsAnError(t *testing.T) {
	f := &fakeLightning{eof: true, streams: [][]*lnrpc.Invoice{{settledInv(1, 3)}}}
	got, err := collect(t, f, 2, 10)
	assert.ErrorIs(t, err, ErrSubscriptionClosed)
	assert.Equal(t, []uint64{3}, got)
}

func TestFromRPCMapsFields(t *testing.T) {
	inv := fromRPC(&lnrpc.Invoice{
		RHash: []byte{0xab, 0xcd}, PaymentRequest: "lnbcrt1...", ValueMsat: 1500, Memo: "m",
		CreationDate: 1_700_000_000, Expiry: 3600, State: lnrpc.Invoice_SETTLED, AmtPaidMsat: 1600,
		SettleDate: 1_700_000_100, SettleIndex: 7, AddIndex: 9,
	})
	assert.Equal(t, Invoice{
		PaymentHash: "abcd", PaymentRequest: "lnbcrt1...", AmountMsat: 1500, Memo: "m",
		CreatedAt: time.Unix(1_700_000_000, 0).UTC(),
		ExpiresAt: time.Unix(1_700_003_600, 0).UTC(),
		Settled:   true, AmtPaidMsat: 1600,
		SettledAt:   time.Unix(1_700_000_100, 0).UTC(),
		SettleIndex: 7, AddIndex: 9,
	}, inv)
	assert.Equal(t, time.UTC, inv.CreatedAt.Location())

	open := fromRPC(&lnrpc.Invoice{State: lnrpc.Invoice_ACCEPTED, AmtPaidMsat: 5})
	assert.False(t, open.Settled, "only SETTLED is settled")
	assert.True(t, open.SettledAt.IsZero())
}
