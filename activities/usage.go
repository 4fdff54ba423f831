package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
	"github.com/billflow/billflow/store"
)

// Usage is what metered usage sessions need besides the store: the service
// catalog and the engine's receipt signer (from BILLFLOW_ROBOT_KEY; nil
// refuses paid sessions with SERVICE_UNAVAILABLE).
type Usage struct {
	Services map[string]models.Service
	Signer   *receipts.Signer
	// Pool is the free-tier pool's configuration (BILLFLOW_POOL); nil: no
	// receipt is subsidised (sessions that ask for the pool are gated).
	Pool *models.PoolConfig
}

// UsageNotifier tells a usage session its payer's wallet gained funds (the
// usage-funds signal). balanceAfterSettle uses it, best effort, when the
// Notifier given to Activities implements it.
type UsageNotifier interface {
	SignalUsageFunds(ctx context.Context, sessionID string, sig contract.UsageFundsSignal) error
}

// usageError is a usage refusal as a non-retryable typed error (type
// contract.ErrUsage, details the UsageError).
func usageError(code models.UsageErrorCode, format string, args ...any) error {
	ue := contract.UsageError{Code: code, Message: fmt.Sprintf(format, args...)}
	return temporal.NewNonRetryableApplicationError(ue.Error(), contract.ErrUsage, nil, ue)
}

// UsageStartInput is a session's start request; At is the workflow's now.
type UsageStartInput struct {
	Request contract.UsageStartRequest `json:"request"`
	At      time.Time                  `json:"at"`
	// Pool: the session may be subsidised by the free-tier pool (answer
	// PoolCover).
	Pool bool `json:"pool,omitempty"`
}

// UsageStartResult is what the session decides its mode from.
type UsageStartResult struct {
	Service  models.Service  `json:"service"`
	Currency models.Currency `json:"currency"`
	// Spendable is the payer's wallet spendable now.
	Spendable int64 `json:"spendable"`
	// BannedUntil is the payer's active grace ban on the service, if any.
	BannedUntil *time.Time `json:"banned_until,omitempty"`
	// Remain are the payer's remain-service units, taken for this session.
	Remain int64 `json:"remain,omitempty"`
	// PoolCover is what the free-tier pool would pay of the first receipt
	// now (a dry run: nothing reserved).
	PoolCover int64 `json:"pool_cover,omitempty"`
}

// UsageStart checks a start request: the service from the catalog, its
// price against the client's highest, the payer; records the session; and
// reports funds, ban and remain service (taken once per session).
func (a *Activities) UsageStart(ctx context.Context, in UsageStartInput) (UsageStartResult, error) {
	var out UsageStartResult
	req := in.Request
	svc, ok := a.Usage.Services[req.ServiceID]
	if !ok {
		return out, usageError(models.UsageServiceNotFound, "service %q is not in the catalog", req.ServiceID)
	}
	if svc.Price > req.MaxUnitPrice {
		return out, usageError(models.UsageUnitPriceTooHigh, "service %s costs %d per %d %s, above the highest accepted %d",
			svc.ID, svc.Price, svc.Units, svc.Unit, req.MaxUnitPrice)
	}
	out.Service = svc
	w, err := a.Store.WalletState(ctx, req.Payer)
	var ve *models.ValidationError
	if errors.As(err, &ve) && ve.Field == "tenant" {
		return out, usageError(models.UsagePayerNotFound, "payer %s is not a tenant", req.Payer)
	}
	if err != nil {
		return out, classify(err)
	}
	out.Currency, out.Spendable = w.Currency, w.Spendable
	row, err := a.Store.StartUsageSession(ctx, req.SessionID, req.Payer, svc.ID, in.At)
	if err != nil {
		return out, err
	}
	switch {
	case row.State == store.UsageSessionEnded:
		return out, usageError(models.UsageSessionEnded, "session %s has ended; a new session needs a new id", req.SessionID)
	case row.Payer != req.Payer || row.ServiceID != svc.ID:
		return out, usageError(models.UsageWrongState, "session id %s is taken by another payer or service", req.SessionID)
	}
	if svc.Free() {
		return out, nil
	}
	if a.Usage.Signer == nil {
		return out, usageError(models.UsageUnavailable, "paid sessions need the engine's key (BILLFLOW_ROBOT_KEY)")
	}
	if out.BannedUntil, err = a.Store.UsageBan(ctx, svc.ID, req.Payer, in.At); err != nil {
		return out, err
	}
	if out.Remain, err = a.Store.TakeUsageRemain(ctx, req.SessionID, req.Payer, svc.ID, svc.Unit, in.At); err != nil {
		return out, err
	}
	if in.Pool {
		first, err := models.UsageDelta(svc.Price, 0, svc.Chunk, svc.Units)
		if err != nil {
			return out, classify(err)
		}
		out.PoolCover = a.poolCover(ctx, req.Payer, req.SessionID+"/start", first)
	}
	return out, nil
}

// UsageSendInput asks to send a receipt for signing: signed first when
// Signed is nil, else Signed is sent again (a re-send).
type UsageSendInput struct {
	Receipt contract.Receipt      `json:"receipt"`
	Signed  *contract.SignRequest `json:"signed,omitempty"`
	Attempt int                   `json:"attempt"`
	// Send numbers the session's sends (the outbound event's subject).
	Send     int64     `json:"send"`
	NotifyDM bool      `json:"notify_dm,omitempty"`
	At       time.Time `json:"at"`
}

// UsageSend signs a receipt with the engine's key (when not signed yet) and
// writes the outbound event usage.sign_request for the application to relay
// (and a NIP-17 DM when the payer opted in and the DM rail is on; a DM
// failure is logged, the event is the request of record).
func (a *Activities) UsageSend(ctx context.Context, in UsageSendInput) (contract.SignRequest, error) {
	var req contract.SignRequest
	if in.Signed != nil {
		req = *in.Signed
	} else {
		if a.Usage.Signer == nil {
			return req, usageError(models.UsageUnavailable, "paid sessions need the engine's key (BILLFLOW_ROBOT_KEY)")
		}
		var err error
		if req, err = a.Usage.Signer.Sign(in.Receipt, in.At); err != nil {
			return req, err
		}
	}
	req.Attempt = in.Attempt
	subject := fmt.Sprintf("%s/%s/%d", req.Receipt.SessionID, req.ReceiptID, in.Send)
	if err := a.Store.WriteUsageEvent(ctx, req.Receipt.Payer, store.EventUsageSignRequest, subject, req); err != nil {
		return req, classify(err)
	}
	a.nudge(ctx)
	if in.NotifyDM && a.Rails.DM != nil {
		body, _ := json.Marshal(req)
		msg := "billflow usage receipt to sign (kind " + fmt.Sprint(receipts.Kind) + "):\n" + string(body)
		// Bounded below the activity's timeout: a slow relay must not make
		// the (already written) sign request time out and be retried.
		dctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		if _, err := a.Rails.DM.Send(dctx, string(req.Receipt.Payer), msg); err != nil {
			activity.GetLogger(ctx).Warn("usage sign request DM not sent; the outbound event stands", "receipt", req.ReceiptID, "error", err)
		}
	}
	return req, nil
}

// UsagePayInput is a receipt the payer signed, to pay from its wallet with
// the usage since the last statistics write.
type UsagePayInput struct {
	Request contract.SignRequest      `json:"request"`
	Answer  contract.NostrEvent       `json:"answer"`
	Stats   []contract.UsageModeStats `json:"stats,omitempty"`
	At      time.Time                 `json:"at"`
	// Pool: decide with the free-tier pool before the wallet pays; PoolSettle
	// records grants of earlier receipts whose units are all used.
	Pool       bool                       `json:"pool,omitempty"`
	PoolSettle []contract.UsagePoolSettle `json:"pool_settle,omitempty"`
}

// UsagePayResult is a receipt's payment: paid, or NotEnough (a result, not
// an error: the session goes to grace or asks for funds).
type UsagePayResult struct {
	Paid      bool  `json:"paid"`
	Duplicate bool  `json:"duplicate,omitempty"`
	NotEnough bool  `json:"not_enough,omitempty"`
	Spendable int64 `json:"spendable"`
	// Pool is the free-tier decision and the pool's part of the receipt
	// (nil without Pool).
	Pool *contract.UsagePoolPaid `json:"pool,omitempty"`
}

func storeStats(in []contract.UsageModeStats) []store.UsageStats {
	out := make([]store.UsageStats, 0, len(in))
	for _, s := range in {
		out = append(out, store.UsageStats{Mode: s.Mode, Seconds: s.Seconds, BytesReceived: s.BytesReceived, BytesSent: s.BytesSent,
			Units: s.Units, Value: s.Value, Sessions: s.Sessions})
	}
	return out
}

// UsagePay pays a signed receipt: the wallet promise keyed by the receipt
// id, the receipt row and the statistics, in one transaction
// (store.PayUsageReceipt). The payer's answer is verified again here, so
// nothing unsigned is ever paid.
func (a *Activities) UsagePay(ctx context.Context, in UsagePayInput) (UsagePayResult, error) {
	var out UsagePayResult
	r := in.Request.Receipt
	if ue := receipts.Verify(in.Answer, r.Payer, in.Request.ReceiptID); ue != nil {
		return out, usageError(ue.Code, "%s", ue.Message)
	}
	pay := store.UsageReceiptPayment{ReceiptID: in.Request.ReceiptID, SessionID: r.SessionID, Seq: r.Seq,
		Payer: r.Payer, ServiceID: r.ServiceID, Unit: r.Unit, Units: r.Units, Value: r.Value, Currency: r.Currency,
		PayerEvent: in.Answer, EngineEvent: in.Request.Event, Stats: storeStats(in.Stats), At: in.At}
	if in.Pool {
		return a.usagePayPooled(ctx, in, pay)
	}
	res, err := a.Store.PayUsageReceipt(ctx, pay)
	var ne *store.NotEnoughError
	if errors.As(err, &ne) {
		return UsagePayResult{NotEnough: true, Spendable: ne.Available}, nil
	}
	if err != nil {
		return out, classify(err)
	}
	a.balanceEvent(ctx, r.Payer, contract.BalanceSettled, in.Request.ReceiptID)
	return UsagePayResult{Paid: true, Duplicate: res.Duplicate, Spendable: res.Wallet.Spendable}, nil
}

// UsageFundsInput asks whether the payer can pay Need; with Wait, a payer
// who cannot is asked for a top-up (usage.funds_needed, once per Key) and
// the session is marked waiting for funds.
type UsageFundsInput struct {
	SessionID string          `json:"session_id"`
	Payer     models.TenantID `json:"payer"`
	ServiceID string          `json:"service_id"`
	Need      int64           `json:"need"`
	Wait      bool            `json:"wait,omitempty"`
	Key       string          `json:"key,omitempty"`
	At        time.Time       `json:"at"`
	// Pool: count what the free-tier pool would pay of Need (a dry run).
	Pool bool `json:"pool,omitempty"`
}

// UsageFundsResult is the payer's spendable (and the pool's cover of Need).
type UsageFundsResult struct {
	Spendable int64 `json:"spendable"`
	Enough    bool  `json:"enough"`
	PoolCover int64 `json:"pool_cover,omitempty"`
}

// UsageFunds reads the payer's spendable; see UsageFundsInput.
func (a *Activities) UsageFunds(ctx context.Context, in UsageFundsInput) (UsageFundsResult, error) {
	w, err := a.Store.WalletState(ctx, in.Payer)
	if err != nil {
		return UsageFundsResult{}, classify(err)
	}
	out := UsageFundsResult{Spendable: w.Spendable, Enough: w.Spendable >= in.Need}
	if in.Pool && !out.Enough {
		out.PoolCover = a.poolCover(ctx, in.Payer, in.SessionID+"/funds", in.Need)
		out.Enough = w.Spendable+out.PoolCover >= in.Need
	}
	if out.Enough || !in.Wait {
		return out, nil
	}
	if err := a.Store.SetUsageSessionState(ctx, in.SessionID, store.UsageSessionWaitingFunds, in.At); err != nil {
		return out, err
	}
	payload := map[string]any{"session_id": in.SessionID, "service_id": in.ServiceID, "payer": in.Payer, "need": in.Need,
		"spendable": w.Spendable, "currency": w.Currency}
	if err := a.Store.WriteUsageEvent(ctx, in.Payer, store.EventUsageFundsNeeded, in.SessionID+"/"+in.Key, payload); err != nil {
		return out, classify(err)
	}
	a.nudge(ctx)
	return out, nil
}

// UsageErrorInput reports a session's error to the application.
type UsageErrorInput struct {
	SessionID string                `json:"session_id"`
	Payer     models.TenantID       `json:"payer"`
	Code      models.UsageErrorCode `json:"code"`
	Message   string                `json:"message"`
	// Key makes the event unique (the error's occurrence in the session).
	Key string `json:"key"`
}

// UsageReportError writes the outbound event usage.error.
func (a *Activities) UsageReportError(ctx context.Context, in UsageErrorInput) error {
	payload := map[string]any{"session_id": in.SessionID, "code": in.Code, "message": in.Message, "meaning": models.UsageErrorMeaning[in.Code]}
	if err := a.Store.WriteUsageEvent(ctx, in.Payer, store.EventUsageError, in.SessionID+"/"+in.Key, payload); err != nil {
		return classify(err)
	}
	a.nudge(ctx)
	return nil
}

// UsageBanInput bans the payer from grace on a service until Until, or
// lifts its ban (Lift).
type UsageBanInput struct {
	ServiceID string          `json:"service_id"`
	Payer     models.TenantID `json:"payer"`
	Until     time.Time       `json:"until,omitempty"`
	Lift      bool            `json:"lift,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	At        time.Time       `json:"at"`
}

// UsageBan writes or lifts a grace ban (both idempotent).
func (a *Activities) UsageBan(ctx context.Context, in UsageBanInput) error {
	if in.Lift {
		_, err := a.Store.LiftUsageBan(ctx, in.ServiceID, in.Payer)
		return err
	}
	return a.Store.BanUsagePayer(ctx, in.ServiceID, in.Payer, in.Until, in.Reason, in.At)
}

// UsageEndInput ends a session: settle its promised total, save unused
// covered units as remain service, write the last statistics.
type UsageEndInput struct {
	SessionID string                    `json:"session_id"`
	Payer     models.TenantID           `json:"payer"`
	ServiceID string                    `json:"service_id"`
	Unit      models.ServiceUnit        `json:"unit"`
	Settle    int64                     `json:"settle"`
	Remain    int64                     `json:"remain"`
	Stats     []contract.UsageModeStats `json:"stats,omitempty"`
	At        time.Time                 `json:"at"`
	// PoolSettle records the session's open free-tier grants (unused parts
	// go back to the pool); PoolRelease releases the whole reservation of
	// receipts whose payment failed.
	PoolSettle  []contract.UsagePoolSettle `json:"pool_settle,omitempty"`
	PoolRelease []string                   `json:"pool_release,omitempty"`
}

// UsageEnd settles the session's promises (one settle entry keyed
// usage/<session>), adds the remain service and the statistics (once per
// session) and marks the session ended. Every step is idempotent.
func (a *Activities) UsageEnd(ctx context.Context, in UsageEndInput) error {
	if err := a.settlePoolGrants(ctx, in.PoolSettle, in.PoolRelease); err != nil {
		return err
	}
	if in.Settle > 0 {
		if _, err := a.Store.SettlePromises(ctx, store.WalletWrite{TenantID: in.Payer, Key: "usage/" + in.SessionID, Amount: in.Settle, At: in.At}); err != nil {
			return classify(err)
		}
		a.balanceEvent(ctx, in.Payer, contract.BalanceSettled, "usage/"+in.SessionID)
	}
	if in.Remain > 0 {
		if _, err := a.Store.AddUsageRemain(ctx, in.SessionID, in.Payer, in.ServiceID, in.Unit, in.Remain, in.At); err != nil {
			return err
		}
	}
	if _, err := a.Store.WriteUsageStats(ctx, in.SessionID+"/end", in.ServiceID, in.Payer, storeStats(in.Stats), in.At); err != nil {
		return classify(err)
	}
	return a.Store.SetUsageSessionState(ctx, in.SessionID, store.UsageSessionEnded, in.At)
}

// usageFundsArrived tells the payer's sessions waiting for funds that a
// top-up was paid (best effort: a session's grace timer also checks the
// wallet when it ends).
func (a *Activities) usageFundsArrived(ctx context.Context, payer models.TenantID, ref string) {
	un, ok := a.Notify.(UsageNotifier)
	if !ok || un == nil {
		return
	}
	ids, err := a.Store.WaitingUsageSessions(ctx, payer)
	if err != nil {
		activity.GetLogger(ctx).Warn("usage sessions waiting for funds not found; their grace timers check the wallet", "tenant", payer, "error", err)
		return
	}
	for _, id := range ids {
		if err := un.SignalUsageFunds(ctx, id, contract.UsageFundsSignal{Reference: ref}); err != nil {
			activity.GetLogger(ctx).Warn("usage session not told of funds; its grace timer checks the wallet", "session", id, "error", err)
		}
	}
}
