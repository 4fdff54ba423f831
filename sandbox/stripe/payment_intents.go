package stripesandbox

import (
	"encoding/json"
	"net/http"
	"regexp"
)

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

var paymentIntentParams = []string{
	"amount", "currency", "customer", "payment_method", "confirm", "off_session", "metadata[",
	"payment_method_types[", "description", "expand[", "capture_method", "confirmation_method",
	"error_on_requires_action", "automatic_payment_methods[", "return_url", "receipt_email",
	"statement_descriptor", "statement_descriptor_suffix",
}

// createPaymentIntent is POST /v1/payment_intents, confirming at once when
// confirm=true.
func (s *Server) createPaymentIntent(req *apiRequest) response {
	v := req.params
	if k := unknownParams(v, paymentIntentParams...); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	amount, hasAmount, bad := intParam(v, "amount")
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	if !hasAmount {
		return fail(http.StatusBadRequest, missingParam("amount"))
	}
	if amount < 1 {
		return fail(http.StatusBadRequest, invalidParam("amount", "This value must be greater than or equal to 1."))
	}
	currency := v.Get("currency")
	if currency == "" {
		return fail(http.StatusBadRequest, missingParam("currency"))
	}
	if !currencyPattern.MatchString(currency) {
		return fail(http.StatusBadRequest, invalidParam("currency", "Invalid currency: "+currency+"."))
	}
	confirm, _, bad := boolParam(v, "confirm")
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	offSession, hasOffSession, bad := boolParam(v, "off_session")
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	if hasOffSession && !confirm {
		return fail(http.StatusBadRequest, invalidParam("off_session", "You can only pass in `off_session` when `confirm` is set to true."))
	}
	if cm := v.Get("capture_method"); cm != "" && cm != "automatic" {
		return fail(http.StatusBadRequest, invalidParam("capture_method", "The sandbox supports only capture_method=automatic."))
	}
	types := list(v, "payment_method_types")
	for _, t := range types {
		if t != "card" {
			return fail(http.StatusBadRequest, invalidParam("payment_method_types", "The payment method type \""+t+"\" is invalid in the sandbox, which has cards only."))
		}
	}
	// Since API version 2023-08-16 a PaymentIntent without
	// payment_method_types accepts the Dashboard's payment methods, some of
	// which redirect: confirming it server-side then needs a return_url
	// unless redirects are turned off. Stripe refuses it; so does the sandbox,
	// so that a client forgetting this fails here and not in production.
	if len(types) == 0 && confirm && v.Get("return_url") == "" && v.Get("automatic_payment_methods[allow_redirects]") != "never" {
		return fail(http.StatusBadRequest, invalidRequest("return_url",
			"This PaymentIntent is configured to accept payment methods enabled in your Dashboard, because some of these payment methods might redirect your customer off of your website, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents."))
	}
	if len(types) == 0 {
		types = []string{"card"}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	custID := v.Get("customer")
	if custID != "" {
		if _, found := s.customers[custID]; !found {
			return fail(http.StatusBadRequest, noSuch("customer", "customer", custID))
		}
	}
	var pm *paymentMethod
	if id := v.Get("payment_method"); id != "" {
		var bad *apiError
		if pm, bad = s.usablePaymentMethod(id, custID); bad != nil {
			return fail(http.StatusBadRequest, *bad)
		}
	}
	if confirm && pm == nil {
		return fail(http.StatusBadRequest, invalidRequest("payment_method",
			"You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method."))
	}
	id := newID("pi")
	pi := &paymentIntent{
		ID: id, Amount: amount, Currency: currency, Customer: custID, Description: v.Get("description"),
		Metadata: hash(v, "metadata"), Status: "requires_payment_method", Created: s.now().Unix(),
		ClientSecret: id + "_secret_" + newID("s")[2:], CaptureMethod: "automatic", ConfirmationMethod: "automatic",
		PaymentMethodTypes: types,
	}
	if cm := v.Get("confirmation_method"); cm != "" {
		pi.ConfirmationMethod = cm
	}
	if pm != nil {
		pi.PaymentMethod = pm.ID
		pi.Status = "requires_confirmation"
	}
	s.paymentIntents[id] = pi
	s.piOrder = append(s.piOrder, id)
	if !confirm {
		return ok(pi.render())
	}
	return s.confirmLocked(pi, pm, offSession, req)
}

// usablePaymentMethod resolves a payment method a PaymentIntent of customer
// custID may use. Callers hold s.mu.
func (s *Server) usablePaymentMethod(id, custID string) (*paymentMethod, *apiError) {
	pm, found := s.resolvePaymentMethod(id)
	if !found {
		e := noSuch("PaymentMethod", "payment_method", id)
		return nil, &e
	}
	_, isTest := testCards[id]
	if pm.Customer != "" && pm.Customer != custID && !isTest {
		e := invalidRequest("payment_method", "The provided PaymentMethod belongs to a different Customer ("+pm.Customer+"). Attach it to this PaymentIntent's Customer first.")
		return nil, &e
	}
	return pm, nil
}

// confirmPaymentIntent is POST /v1/payment_intents/{id}/confirm.
func (s *Server) confirmPaymentIntent(req *apiRequest) response {
	v := req.params
	if k := unknownParams(v, "payment_method", "off_session", "expand[", "return_url", "error_on_requires_action", "receipt_email"); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	offSession, _, bad := boolParam(v, "off_session")
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pi, found := s.paymentIntents[req.r.PathValue("id")]
	if !found {
		return fail(http.StatusNotFound, noSuch("payment_intent", "intent", req.r.PathValue("id")))
	}
	if pi.Status != "requires_payment_method" && pi.Status != "requires_confirmation" {
		e := invalidRequest("", "You cannot confirm this PaymentIntent because it has a status of "+pi.Status+". Only a PaymentIntent with one of the following statuses may be confirmed: requires_confirmation, requires_payment_method.")
		e.Code = "payment_intent_unexpected_state"
		e.PaymentIntent = mustJSON(pi.render())
		return fail(http.StatusBadRequest, e)
	}
	pmID := v.Get("payment_method")
	if pmID == "" {
		pmID = pi.PaymentMethod
	}
	if pmID == "" {
		return fail(http.StatusBadRequest, invalidRequest("payment_method", "You cannot confirm this PaymentIntent because it's missing a payment method."))
	}
	pm, bad := s.usablePaymentMethod(pmID, pi.Customer)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	pi.PaymentMethod = pm.ID
	return s.confirmLocked(pi, pm, offSession, req)
}

// confirmLocked attempts the charge, with the outcome the card's test id
// chooses, and emits the event Stripe would. Callers hold s.mu.
func (s *Server) confirmLocked(pi *paymentIntent, pm *paymentMethod, offSession bool, req *apiRequest) response {
	b := testCards[pm.Card]
	pi.PaymentMethod = pm.ID
	pi.LastPaymentError = nil
	pi.NextAction = nil
	switch {
	case b.outcome == succeed:
		pi.Status, pi.AmountReceived, pi.LatestCharge, pi.charged = "succeeded", pi.Amount, newID("ch"), true
		s.emitLocked("payment_intent.succeeded", pi.render(), req)
		return ok(pi.render())
	case b.outcome == process:
		pi.Status, pi.LatestCharge, pi.charged = "processing", newID("ch"), true
		s.emitLocked("payment_intent.processing", pi.render(), req)
		s.scheduleSettleLocked(pi)
		return ok(pi.render())
	case b.outcome == needsAuthentication && !offSession:
		pi.Status = "requires_action"
		pi.NextAction = map[string]any{"type": "use_stripe_sdk", "use_stripe_sdk": map[string]any{"type": "three_d_secure_redirect"}}
		s.emitLocked("payment_intent.requires_action", pi.render(), req)
		return ok(pi.render())
	}
	e := apiError{Type: "card_error", Code: "card_declined", DeclineCode: b.declineCode, Message: b.message,
		DocURL: "https://stripe.com/docs/error-codes/card-declined", PaymentMethod: pm.render()}
	if b.outcome == needsAuthentication {
		e.Code, e.DeclineCode = "authentication_required", "authentication_required"
		e.Message = "Your card was declined. This transaction requires authentication."
		e.DocURL = "https://stripe.com/docs/error-codes/authentication-required"
	}
	pi.LatestCharge = newID("ch")
	e.Charge = pi.LatestCharge
	pi.Status, pi.charged = "requires_payment_method", false
	last := e
	pi.LastPaymentError = &last
	s.emitLocked("payment_intent.payment_failed", pi.render(), req)
	e.PaymentIntent = mustJSON(pi.render())
	return jsonResponse(http.StatusPaymentRequired, errorBody(e))
}

func (s *Server) getPaymentIntent(req *apiRequest) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi, found := s.paymentIntents[req.r.PathValue("id")]
	if !found {
		return fail(http.StatusNotFound, noSuch("payment_intent", "intent", req.r.PathValue("id")))
	}
	return ok(pi.render())
}

// listPaymentIntents is GET /v1/payment_intents (newest first, optionally
// one customer's).
func (s *Server) listPaymentIntents(req *apiRequest) response {
	if k := unknownParams(req.params, "customer", "limit", "starting_after", "ending_before", "expand[", "created[", "created"); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	limit, bad := limitParam(req.params)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for i := len(s.piOrder) - 1; i >= 0; i-- {
		pi := s.paymentIntents[s.piOrder[i]]
		if c := req.params.Get("customer"); c == "" || pi.Customer == c {
			ids = append(ids, pi.ID)
		}
	}
	from, to, hasMore, bad := page(ids, req.params.Get("starting_after"), limit)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	data := make([]any, 0, to-from)
	for _, id := range ids[from:to] {
		data = append(data, s.paymentIntents[id].render())
	}
	return ok(listJSON{Object: "list", URL: "/v1/payment_intents", HasMore: hasMore, Data: data})
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the sandbox's own structs are encoded
	}
	return b
}
