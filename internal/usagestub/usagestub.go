// Package usagestub is a stand-in UsageSession workflow for the tests of
// the edges (billing, api, starter): registered under the contract's
// workflow name, it answers the contract's updates, signal and query with
// fixed data, so those tests do not depend on the real session machine.
//
// Its rules: service ServiceFree starts FREE; ServicePricey is refused
// UNIT_PRICE_TOO_HIGH; any other service waits for the first receipt's
// signature. A receipt covers Chunk seconds at Price per second; the payer
// signs it with payersign (checked: kind, id and signature, the payer's
// key, the receipt waited for); once reported usage reaches what is paid,
// the next receipt waits. End completes the workflow.
package usagestub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/models"
)

// Fixed data of the stub.
const (
	ServiceFree   = "free-vpn"
	ServicePricey = "pricey-vpn"
	Chunk         = 60
	Price         = 2
	// EnginePubKey is the key the stub's receipts claim to be signed with.
	EnginePubKey = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
)

// Register registers the stub as the UsageSession workflow.
func Register(w worker.Registry) {
	w.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: contract.WorkflowUsageSession})
}

// ReceiptID is the id of the stub's receipt seq in a session.
func ReceiptID(sessionID string, seq int64) string { return fmt.Sprintf("rcpt-%s-%d", sessionID, seq) }

// SignRequestFor is the stub's sign request for receipt seq.
func SignRequestFor(in contract.UsageStartRequest, seq int64) contract.SignRequest {
	id := ReceiptID(in.SessionID, seq)
	sum := sha256.Sum256([]byte(id))
	r := contract.Receipt{Version: 2, SessionID: in.SessionID, ServiceID: in.ServiceID, Payer: in.Payer, Provider: EnginePubKey,
		Unit: models.UnitSeconds, Units: Chunk, UnitPrice: Price, PriceUnits: 1, Value: Chunk * Price, Currency: "usd", Seq: seq}
	if seq > 1 {
		r.Prev = ReceiptID(in.SessionID, seq-1)
	}
	return contract.SignRequest{ReceiptID: id, Receipt: r, Attempt: 1, Event: contract.NostrEvent{
		ID: hex.EncodeToString(sum[:]), PubKey: EnginePubKey, Kind: 9130, Tags: [][]string{{"r", id}}, Content: id, Sig: strings.Repeat("0", 128)}}
}

// usageErr is a UsageError as the real workflow returns it.
func usageErr(code models.UsageErrorCode, format string, args ...any) error {
	ue := contract.UsageError{Code: code, Message: fmt.Sprintf(format, args...)}
	return temporal.NewApplicationErrorWithOptions(ue.Error(), contract.ErrUsage, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{ue}})
}

// Workflow is the stub session.
func Workflow(ctx workflow.Context, input contract.UsageSessionInput) (contract.UsageView, error) {
	// Like the real session, the request comes with the start update.
	in := contract.UsageStartRequest{SessionID: input.SessionID}
	if in.SessionID == "" {
		in.SessionID = strings.TrimPrefix(workflow.GetInfo(ctx).WorkflowExecution.ID, "usage/")
	}
	v := contract.UsageView{SessionID: in.SessionID, State: contract.UsageIdle, Currency: "usd", StartedAt: workflow.Now(ctx).UTC()}
	var seq int64
	reports := map[string]bool{}
	ended := false
	end := func() {
		ended = true
		v.State, v.SubState, v.Waiting = contract.UsageEnded, "", nil
		at := workflow.Now(ctx).UTC()
		v.EndedAt = &at
	}
	wait := func() {
		seq++
		sr := SignRequestFor(in, seq)
		v.Waiting = &sr
	}
	reportCh := workflow.GetSignalChannel(ctx, contract.SignalUsageReport)
	apply := func(r contract.UsageReport) {
		if reports[r.ID] || ended {
			return
		}
		reports[r.ID] = true
		v.Seconds += r.Seconds
		v.BytesReceived += r.BytesReceived
		v.BytesSent += r.BytesSent
		v.UsedUnits += r.Seconds
		v.Value = v.UsedUnits * Price
		if v.State == contract.UsageNormal && v.Waiting == nil && v.UsedUnits >= v.PaidUnits {
			v.SubState = contract.SubWaitingNextReceiptSign
			wait()
		}
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryUsage, func() (contract.UsageView, error) { return v, nil }); err != nil {
		return v, err
	}
	if err := workflow.SetUpdateHandler(ctx, contract.UpdateUsageStart, func(_ workflow.Context, req contract.UsageStartRequest) (contract.UsageStartResult, error) {
		if seq == 0 && v.State == contract.UsageIdle {
			in.ServiceID, in.Payer, in.MaxUnitPrice, in.NotifyDM = req.ServiceID, req.Payer, req.MaxUnitPrice, req.NotifyDM
			v.ServiceID, v.Payer = req.ServiceID, req.Payer
		}
		switch {
		case seq == 0 && v.State == contract.UsageIdle && in.ServiceID == ServicePricey:
			v.LastError = models.UsageUnitPriceTooHigh
			end()
			return contract.UsageStartResult{}, usageErr(models.UsageUnitPriceTooHigh, "service %s costs %d per unit, above %d", in.ServiceID, Price, req.MaxUnitPrice)
		case in.ServiceID == ServiceFree:
			v.State, v.SubState = contract.UsageFree, ""
		case seq == 0:
			v.SubState = contract.SubWaitingFirstReceiptSign
			wait()
		}
		return contract.UsageStartResult{State: v.State, SubState: v.SubState, Receipt: v.Waiting}, nil
	}); err != nil {
		return v, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateUsageSign, func(_ workflow.Context, req contract.UsageSignRequest) (contract.UsageView, error) {
		v.ReceiptsSigned++
		v.PaidUnits += Chunk
		v.Waiting = nil
		v.State, v.SubState = contract.UsageNormal, contract.SubNormal
		return v, nil
	}, workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, req contract.UsageSignRequest) error {
		ev := req.Event
		switch {
		case ended:
			return usageErr(models.UsageSessionEnded, "session %s has ended", in.SessionID)
		case v.Waiting == nil:
			return usageErr(models.UsageReceiptCantFind, "no receipt is waiting for a signature")
		case payersign.Verify(ev) != nil:
			return usageErr(models.UsageReceiptBadSignature, "%v", payersign.Verify(ev))
		case ev.PubKey != string(in.Payer):
			return usageErr(models.UsageReceiptWrongPayer, "signed by %s, not the payer", ev.PubKey)
		case payersign.ReceiptID(ev) != v.Waiting.ReceiptID:
			return usageErr(models.UsageReceiptCantFind, "receipt %q is not the one waited for (%s)", payersign.ReceiptID(ev), v.Waiting.ReceiptID)
		}
		return nil
	}}); err != nil {
		return v, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateUsageEnd, func(workflow.Context) (contract.UsageView, error) {
		end()
		return v, nil
	}, workflow.UpdateHandlerOptions{Validator: func(workflow.Context) error {
		if ended {
			return usageErr(models.UsageSessionEnded, "session %s has ended", in.SessionID)
		}
		return nil
	}}); err != nil {
		return v, err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var r contract.UsageReport
			reportCh.Receive(ctx, &r)
			apply(r)
		}
	})
	if err := workflow.Await(ctx, func() bool { return ended }); err != nil {
		return v, err
	}
	return v, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}
