package billing

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// Metered usage sessions (issue 10): each session is a UsageSession
// workflow, usage/<session-id>, driven here by its updates, signal and query.
type (
	// UsageError is a session's typed refusal or failure; its Code is one
	// of models' UsageErrorCode values (RECEIPT_CANT_FIND, ...).
	UsageError = contract.UsageError
	// UsageStartRequest starts a session.
	UsageStartRequest = contract.UsageStartRequest
	// UsageStartResult is the mode the session started in.
	UsageStartResult = contract.UsageStartResult
	// UsageReport is usage since the previous report, idempotent by ID.
	UsageReport = contract.UsageReport
	// UsageView is a session's state.
	UsageView = contract.UsageView
	// UsageSignRequest carries the payer's signed event over a receipt.
	UsageSignRequest = contract.UsageSignRequest
	// NostrEvent is a signed Nostr event as JSON carries it.
	NostrEvent = contract.NostrEvent
	// SignRequest is a receipt the engine signed, waiting for the payer.
	SignRequest = contract.SignRequest
)

// ErrUsageSessionNotFound means no workflow exists for the session id.
// Errors wrapping it name the session.
var ErrUsageSessionNotFound = errors.New("usage session not found")

// sessionIDPattern keeps session ids printable and free of '/', since they
// become part of the workflow ID usage/<session-id>.
var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// ValidUsageSessionID checks a session id: 1-128 letters, digits, '.',
// '_', ':' or '-', starting with a letter or digit.
func ValidUsageSessionID(id string) error {
	if !sessionIDPattern.MatchString(id) {
		return &ValidationError{Field: "session_id", Reason: fmt.Sprintf("%q is not 1-128 letters, digits, '.', '_', ':' or '-' starting with a letter or digit", id)}
	}
	return nil
}

func usageNotFound(sessionID string) error {
	return fmt.Errorf("%w: %s", ErrUsageSessionNotFound, sessionID)
}

// StartUsage starts a metered session by update-with-start of
// usage/<session-id> (UpdateUsageStart): it answers the mode the session
// started in (FREE, NORMAL on remain service, IDLE waiting for the first
// receipt's signature, GRACE) or a *UsageError (SERVICE_NOT_FOUND,
// UNIT_PRICE_TOO_HIGH, RECEIPT_BANNED_PKEY_HASH, ...). Starting a running
// session again asks it again (the workflow answers idempotently); the id
// of a session that has ended is not reused: that is a *UsageError
// SESSION_ENDED. The workflow's start input is the request itself.
func (c *Client) StartUsage(ctx context.Context, req UsageStartRequest) (UsageStartResult, error) {
	var res UsageStartResult
	if err := ValidUsageSessionID(req.SessionID); err != nil {
		return res, err
	}
	req.ServiceID = strings.TrimSpace(req.ServiceID)
	if req.ServiceID == "" {
		return res, &ValidationError{Field: "service_id", Reason: "is required"}
	}
	payer, err := models.ParseTenantID(string(req.Payer))
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return res, &ValidationError{Field: "payer", Reason: ve.Reason}
		}
		return res, err
	}
	req.Payer = payer
	if req.MaxUnitPrice < 0 {
		return res, &ValidationError{Field: "max_unit_price", Reason: fmt.Sprintf("%d is negative", req.MaxUnitPrice)}
	}
	start := c.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       contract.UsageSessionWorkflowID(req.SessionID),
		TaskQueue:                c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A session id names one session: an ended one is not started again
		// (its receipts and statistics are keyed by it).
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:         fmt.Sprintf("Usage session %s: service %s for %s", req.SessionID, req.ServiceID, payer.Short()),
		StaticDetails: fmt.Sprintf("Payer `%s`, service `%s`, highest unit price accepted %d. Issues receipts for the payer to co-sign, pays each from the payer's wallet, "+
			"goes into grace when the wallet runs short.", payer, req.ServiceID, req.MaxUnitPrice),
	}, contract.WorkflowUsageSession, contract.UsageSessionInput{SessionID: req.SessionID})
	handle, err := c.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: contract.UpdateUsageStart, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return res, usageErr(err, req.SessionID)
	}
	return res, usageErr(handle.Get(ctx, &res), req.SessionID)
}

// SignReceipt delivers the payer's signed Nostr event over the receipt the
// session waits for (UpdateUsageSign) and answers the session's state after
// it. A bad answer is refused by the workflow's validator, and the session
// keeps waiting: a *UsageError RECEIPT_CANT_FIND (not the receipt waited
// for), RECEIPT_WRONG_PKEY_HASH (not the payer's key),
// RECEIPT_BAD_SIGNATURE or RECEIPT_BAD_VERSION. A malformed event (ids and
// keys not hex of the right length) is a *ValidationError before it is sent.
func (c *Client) SignReceipt(ctx context.Context, sessionID string, ev NostrEvent) (UsageView, error) {
	var v UsageView
	if err := ValidUsageSessionID(sessionID); err != nil {
		return v, err
	}
	if err := ValidNostrEvent(ev); err != nil {
		return v, err
	}
	err := c.usageUpdate(ctx, sessionID, contract.UpdateUsageSign, &v, UsageSignRequest{Event: ev})
	return v, err
}

// ValidNostrEvent refuses an event that cannot be a signed Nostr event (id,
// pubkey and sig not lower-case hex of their sizes), naming the field;
// whether it verifies is the workflow's to say.
func ValidNostrEvent(ev NostrEvent) error {
	for _, f := range []struct {
		name, value string
		size        int
	}{{"event.id", ev.ID, 64}, {"event.pubkey", ev.PubKey, 64}, {"event.sig", ev.Sig, 128}} {
		if len(f.value) != f.size || !isLowerHex(f.value) {
			return &ValidationError{Field: f.name, Reason: fmt.Sprintf("%q is not %d lower-case hex digits", f.value, f.size)}
		}
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// ReportUsage tells the session the usage since the last report
// (SignalUsageReport), fire and forget: the workflow de-duplicates by
// report ID. A session that has ended is a *UsageError SESSION_ENDED.
func (c *Client) ReportUsage(ctx context.Context, sessionID string, r UsageReport) error {
	if err := ValidUsageSessionID(sessionID); err != nil {
		return err
	}
	r.ID = strings.TrimSpace(r.ID)
	if r.ID == "" || len(r.ID) > 128 {
		return &ValidationError{Field: "id", Reason: "a report id of 1-128 characters is required (reports are idempotent by it)"}
	}
	for _, f := range []struct {
		name string
		n    int64
	}{{"seconds", r.Seconds}, {"bytes_received", r.BytesReceived}, {"bytes_sent", r.BytesSent}} {
		if f.n < 0 {
			return &ValidationError{Field: f.name, Reason: fmt.Sprintf("%d is negative", f.n)}
		}
	}
	err := c.temporal.SignalWorkflow(ctx, contract.UsageSessionWorkflowID(sessionID), "", contract.SignalUsageReport, r)
	return usageErr(err, sessionID)
}

// EndUsage ends the session (UpdateUsageEnd) and answers its final state:
// usage valued, unused covered units saved as remain service, statistics
// written. Report the last usage (ReportUsage) before ending. Ending a
// session that has ended already is a *UsageError SESSION_ENDED.
func (c *Client) EndUsage(ctx context.Context, sessionID string) (UsageView, error) {
	var v UsageView
	if err := ValidUsageSessionID(sessionID); err != nil {
		return v, err
	}
	// A report signalled just before may share its workflow task with the
	// end update, and the SDK runs the update's handler before the signal
	// reaches its channel: the last report would be left out. A query is
	// answered only once the signals already in history are processed, so
	// asking first puts the end in a later workflow task.
	if _, err := c.UsageSession(ctx, sessionID); err != nil {
		return v, err
	}
	err := c.usageUpdate(ctx, sessionID, contract.UpdateUsageEnd, &v)
	return v, err
}

// UsageSession answers a session's state (QueryUsage), also after it ended
// while its history is retained.
func (c *Client) UsageSession(ctx context.Context, sessionID string) (UsageView, error) {
	var v UsageView
	if err := ValidUsageSessionID(sessionID); err != nil {
		return v, err
	}
	val, err := c.temporal.QueryWorkflow(ctx, contract.UsageSessionWorkflowID(sessionID), "", contract.QueryUsage)
	if err != nil {
		return v, usageErr(err, sessionID)
	}
	return v, val.Get(&v)
}

func (c *Client) usageUpdate(ctx context.Context, sessionID, name string, out any, args ...any) error {
	handle, err := c.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: contract.UsageSessionWorkflowID(sessionID), UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return usageErr(err, sessionID)
	}
	return usageErr(handle.Get(ctx, out), sessionID)
}

// usageErr turns a session's typed refusal into a *UsageError, an ended
// session into SESSION_ENDED, and the rest as translate does.
func usageErr(err error, sessionID string) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == contract.ErrUsage {
		var ue UsageError
		if appErr.HasDetails() && appErr.Details(&ue) == nil && ue.Code != "" {
			return &ue
		}
		// No details: the message is "<CODE>: <message>" (UsageError.Error).
		code, msg, _ := strings.Cut(appErr.Message(), ": ")
		if c, perr := models.ParseUsageErrorCode(code); perr == nil {
			return &UsageError{Code: c, Message: msg}
		}
		return &UsageError{Code: models.UsageWrongState, Message: appErr.Message()}
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return &UsageError{Code: models.UsageSessionEnded, Message: fmt.Sprintf("session %s has ended; start a new session under another id", sessionID)}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) && isCompleted(err) {
		return &UsageError{Code: models.UsageSessionEnded, Message: fmt.Sprintf("session %s has ended", sessionID)}
	}
	return translate(err, usageNotFound(sessionID))
}
