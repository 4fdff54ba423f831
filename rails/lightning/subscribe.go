package lightning

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
)

// While a subscription from settle index 0 cannot prove that lnd has
// registered it (see followFromZero), it rescans for the first settlement
// at these growing intervals.
const (
	zeroProbeFirst = 500 * time.Millisecond
	zeroProbeMax   = 30 * time.Second
)

// SubscribeSettled implements Node with SubscribeInvoices. It returns
// ctx.Err() when ctx ends, fn's error as is, and any other failure (node
// restart, network) as an error: reconnecting is the caller's job, from the
// last settle index it persisted.
//
// lnd replays settlements after a non-zero settle_index, race-free. It
// treats 0 as "no replay", so "all" is built from ListInvoices: find the
// settlement with index 1, deliver it and resume after it.
func (l *LND) SubscribeSettled(ctx context.Context, afterSettleIndex uint64, fn func(Invoice) error) error {
	if afterSettleIndex > 0 {
		return l.follow(ctx, afterSettleIndex, fn)
	}
	first, found, maxAdd, err := l.firstSettled(ctx)
	if err != nil {
		return err
	}
	if found {
		return l.resumeAfterFirst(ctx, first, fn)
	}
	return l.followFromZero(ctx, maxAdd, fn)
}

// resumeAfterFirst delivers the settlement with index 1 and follows from it.
func (l *LND) resumeAfterFirst(ctx context.Context, first Invoice, fn func(Invoice) error) error {
	if err := fn(first); err != nil {
		return err
	}
	return l.follow(ctx, first.SettleIndex, fn)
}

// follow streams settlements after `after` (> 0) until ctx ends or fn fails.
func (l *LND) follow(ctx context.Context, after uint64, fn func(Invoice) error) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := l.client.SubscribeInvoices(streamCtx, &lnrpc.InvoiceSubscription{SettleIndex: after})
	if err != nil {
		return subscriptionError(ctx, err)
	}
	last := after
	for {
		msg, err := stream.Recv()
		if err != nil {
			return subscriptionError(ctx, err)
		}
		// The stream also carries new (open) invoices, and lnd never
		// repeats a settle index on one stream; the index check only
		// guards the order this method promises.
		if msg.GetState() != lnrpc.Invoice_SETTLED || msg.GetSettleIndex() <= last {
			continue
		}
		if err := fn(fromRPC(msg)); err != nil {
			return err
		}
		last = msg.GetSettleIndex()
	}
}

// followFromZero follows a node on which firstSettled found no settlement.
// A settlement landing between that scan and lnd registering the stream
// would be in neither, so the scan is repeated once registration is
// certain: when the first message arrives. With maxAdd >= 2 invoices on the
// node, asking for the adds after maxAdd-1 makes lnd send one right after
// registering (lnd ignores add_index 0, hence the 2). With fewer, the first
// message may be long in coming, so until then the scan is repeated at
// growing intervals instead.
func (l *LND) followFromZero(ctx context.Context, maxAdd uint64, fn func(Invoice) error) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &lnrpc.InvoiceSubscription{}
	if maxAdd >= 2 {
		req.AddIndex = maxAdd - 1
	}
	stream, err := l.client.SubscribeInvoices(streamCtx, req)
	if err != nil {
		return subscriptionError(ctx, err)
	}

	type received struct {
		msg *lnrpc.Invoice
		err error
	}
	msgs := make(chan received)
	go func() {
		for {
			msg, err := stream.Recv()
			select {
			case msgs <- received{msg, err}:
			case <-streamCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	// rescan resumes from the first settlement if there is one now.
	rescan := func() (resumed bool, err error) {
		first, found, _, err := l.firstSettled(ctx)
		if err != nil || !found {
			return false, err
		}
		cancel()
		return true, l.resumeAfterFirst(ctx, first, fn)
	}

	var probe *time.Timer
	var probeC <-chan time.Time
	interval := zeroProbeFirst
	if maxAdd < 2 {
		probe = time.NewTimer(interval)
		defer probe.Stop()
		probeC = probe.C
	}
	registered := false
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-probeC:
			if resumed, err := rescan(); resumed || err != nil {
				return err
			}
			interval = min(2*interval, zeroProbeMax)
			probe.Reset(interval)
		case r := <-msgs:
			if r.err != nil {
				return subscriptionError(ctx, r.err)
			}
			if !registered {
				registered = true
				probeC = nil
				if resumed, err := rescan(); resumed || err != nil {
					return err
				}
			}
			msg := r.msg
			if msg.GetState() != lnrpc.Invoice_SETTLED || msg.GetSettleIndex() <= last {
				continue
			}
			if last == 0 && msg.GetSettleIndex() > 1 {
				// Earlier settlements exist that this stream will not
				// replay; lnd will from index 1.
				if resumed, err := rescan(); resumed || err != nil {
					return err
				}
			}
			if err := fn(fromRPC(msg)); err != nil {
				return err
			}
			last = msg.GetSettleIndex()
		}
	}
}

func subscriptionError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, io.EOF) {
		return ErrSubscriptionClosed
	}
	return rpcError(ctx, "SubscribeInvoices", err)
}

// firstSettled finds the invoice with settle index 1, if any, scanning the
// node's invoices in add order; maxAdd is the highest add index seen.
// Settle index 1 usually belongs to an early invoice, so a scan that finds
// it stops soon; one that does not reads every invoice, which happens only
// while the node has never been paid.
func (l *LND) firstSettled(ctx context.Context) (first Invoice, found bool, maxAdd uint64, err error) {
	var offset uint64
	for {
		callCtx, cancel := context.WithTimeout(ctx, l.timeout)
		resp, err := l.client.ListInvoices(callCtx, &lnrpc.ListInvoiceRequest{IndexOffset: offset, NumMaxInvoices: listPageSize})
		cancel()
		if err != nil {
			return Invoice{}, false, maxAdd, rpcError(ctx, "ListInvoices", err)
		}
		for _, inv := range resp.GetInvoices() {
			maxAdd = max(maxAdd, inv.GetAddIndex())
			if inv.GetState() == lnrpc.Invoice_SETTLED && inv.GetSettleIndex() == 1 {
				return fromRPC(inv), true, maxAdd, nil
			}
		}
		if len(resp.GetInvoices()) == 0 || resp.GetLastIndexOffset() <= offset {
			return Invoice{}, false, maxAdd, nil
		}
		offset = resp.GetLastIndexOffset()
	}
}
