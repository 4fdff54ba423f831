package stripesandbox

import (
	"fmt"
	"strings"
)

// Test payment method ids, as in Stripe's test mode: the id chooses what a
// charge does. Stripe accepts them anywhere a payment method id goes.
const (
	// CardVisa is charged successfully.
	CardVisa = "pm_card_visa"
	// CardMastercard is charged successfully.
	CardMastercard = "pm_card_mastercard"
	// CardDeclined is declined with decline code generic_decline.
	CardDeclined = "pm_card_chargeDeclined"
	// CardInsufficientFunds is declined with decline code insufficient_funds.
	CardInsufficientFunds = "pm_card_visa_chargeDeclinedInsufficientFunds"
	// CardAuthenticationRequired needs 3D Secure on every charge: off-session
	// it is declined with authentication_required, on-session the
	// PaymentIntent goes to requires_action.
	CardAuthenticationRequired = "pm_card_authenticationRequired"
	// CardProcessing is sandbox-only (Stripe has no such card): the charge
	// stays processing until SettleProcessing decides it.
	CardProcessing = "pm_sandbox_processing"
)

// outcome is what charging a card does.
type outcome int

const (
	succeed outcome = iota
	decline
	needsAuthentication
	process
)

// cardBehaviour describes a test card.
type cardBehaviour struct {
	brand, last4 string
	outcome      outcome
	declineCode  string
	message      string
}

var testCards = map[string]cardBehaviour{
	CardVisa:                      {brand: "visa", last4: "4242", outcome: succeed},
	CardMastercard:                {brand: "mastercard", last4: "4444", outcome: succeed},
	"pm_card_amex":                {brand: "amex", last4: "8431", outcome: succeed},
	CardDeclined:                  {brand: "visa", last4: "0002", outcome: decline, declineCode: "generic_decline", message: "Your card was declined."},
	"pm_card_visa_chargeDeclined": {brand: "visa", last4: "0002", outcome: decline, declineCode: "generic_decline", message: "Your card was declined."},
	CardInsufficientFunds:         {brand: "visa", last4: "9995", outcome: decline, declineCode: "insufficient_funds", message: "Your card has insufficient funds."},
	"pm_card_chargeDeclinedInsufficientFunds": {brand: "visa", last4: "9995", outcome: decline, declineCode: "insufficient_funds", message: "Your card has insufficient funds."},
	"pm_card_chargeDeclinedLostCard":          {brand: "visa", last4: "9987", outcome: decline, declineCode: "lost_card", message: "Your card was declined."},
	CardAuthenticationRequired:                {brand: "visa", last4: "3184", outcome: needsAuthentication},
	CardProcessing:                            {brand: "visa", last4: "0077", outcome: process},
}

// Customer seeds a customer with saved cards.
type Customer struct {
	// ID is the customer id, e.g. cus_alice; empty generates one.
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	// PaymentMethods are attached to the customer, in order.
	PaymentMethods []PaymentMethod `json:"payment_methods,omitempty"`
	// DefaultPaymentMethod is invoice_settings.default_payment_method: the
	// id of one of PaymentMethods, or empty for none.
	DefaultPaymentMethod string `json:"default_payment_method,omitempty"`
}

// PaymentMethod seeds a saved card.
type PaymentMethod struct {
	// ID is the payment method id; a test id (CardVisa, ...) is kept as is.
	ID string `json:"id"`
	// Card is the test id whose behaviour this card has; empty means ID,
	// which must then be a test id.
	Card string `json:"card,omitempty"`
}

// AddCustomer creates a customer with its saved cards. It is how tests and
// the standalone server (POST /_sandbox/customers) seed the sandbox.
func (s *Server) AddCustomer(c Customer) error {
	if c.ID == "" {
		c.ID = newID("cus")
	}
	if !strings.HasPrefix(c.ID, "cus_") {
		return fmt.Errorf("stripe sandbox: customer id %q must start with cus_", c.ID)
	}
	pms := make([]*paymentMethod, 0, len(c.PaymentMethods))
	defaultFound := c.DefaultPaymentMethod == ""
	for _, p := range c.PaymentMethods {
		card := p.Card
		if card == "" {
			card = p.ID
		}
		b, ok := testCards[card]
		if !ok {
			return fmt.Errorf("stripe sandbox: payment method %q: %q is not a known test card", p.ID, card)
		}
		if !strings.HasPrefix(p.ID, "pm_") {
			return fmt.Errorf("stripe sandbox: payment method id %q must start with pm_", p.ID)
		}
		if _, isTest := testCards[p.ID]; isTest && card != p.ID {
			return fmt.Errorf("stripe sandbox: payment method %q is a test id and cannot behave as %q", p.ID, card)
		}
		pms = append(pms, &paymentMethod{ID: p.ID, Customer: c.ID, Card: card, Brand: b.brand, Last4: b.last4,
			ExpMonth: 12, ExpYear: s.now().Year() + 3, Created: s.now().Unix()})
		defaultFound = defaultFound || p.ID == c.DefaultPaymentMethod
	}
	if !defaultFound {
		return fmt.Errorf("stripe sandbox: customer %s: default payment method %q is not one of its payment methods", c.ID, c.DefaultPaymentMethod)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.customers[c.ID]; dup {
		return fmt.Errorf("stripe sandbox: customer %s already exists", c.ID)
	}
	for _, pm := range pms {
		if prior, dup := s.paymentMethods[pm.ID]; dup {
			return fmt.Errorf("stripe sandbox: payment method %s is already attached to %s (give each customer its own id, with Card naming the test card)", pm.ID, prior.Customer)
		}
	}
	s.customers[c.ID] = &customer{ID: c.ID, Email: c.Email, Name: c.Name, DefaultPaymentMethod: c.DefaultPaymentMethod,
		Created: s.now().Unix()}
	for _, pm := range pms {
		s.seq++
		pm.seq = s.seq
		s.paymentMethods[pm.ID] = pm
	}
	return nil
}

// resolvePaymentMethod finds a payment method by id: a saved one, or a test
// id used directly (as Stripe allows in test mode), which is then a fresh,
// unattached card. Callers hold s.mu.
func (s *Server) resolvePaymentMethod(id string) (*paymentMethod, bool) {
	if pm, ok := s.paymentMethods[id]; ok {
		return pm, true
	}
	if b, ok := testCards[id]; ok {
		return &paymentMethod{ID: id, Card: id, Brand: b.brand, Last4: b.last4, ExpMonth: 12, ExpYear: s.now().Year() + 3,
			Created: s.now().Unix()}, true
	}
	return nil, false
}
