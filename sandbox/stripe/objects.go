package stripesandbox

import "encoding/json"

// apiError is Stripe's error object, the value of a response's "error" key.
type apiError struct {
	Type          string          `json:"type"`
	Code          string          `json:"code,omitempty"`
	DeclineCode   string          `json:"decline_code,omitempty"`
	Message       string          `json:"message"`
	Param         string          `json:"param,omitempty"`
	DocURL        string          `json:"doc_url,omitempty"`
	Charge        string          `json:"charge,omitempty"`
	PaymentIntent json.RawMessage `json:"payment_intent,omitempty"`
	PaymentMethod *pmJSON         `json:"payment_method,omitempty"`
}

func errorBody(e apiError) map[string]apiError { return map[string]apiError{"error": e} }

func invalidRequest(param, msg string) apiError {
	return apiError{Type: "invalid_request_error", Param: param, Message: msg}
}

func missingParam(param string) apiError {
	e := invalidRequest(param, "Missing required param: "+param+".")
	e.Code = "parameter_missing"
	return e
}

func invalidParam(param, msg string) apiError {
	e := invalidRequest(param, msg)
	e.Code = "parameter_invalid"
	return e
}

func noSuch(kind, param, id string) apiError {
	e := invalidRequest(param, "No such "+kind+": '"+id+"'")
	e.Code = "resource_missing"
	return e
}

// listJSON is a Stripe list object.
type listJSON struct {
	Object  string `json:"object"`
	URL     string `json:"url"`
	HasMore bool   `json:"has_more"`
	Data    []any  `json:"data"`
}

// customer is a Stripe Customer as the sandbox keeps it.
type customer struct {
	ID                   string
	Email, Name          string
	Description          string
	Metadata             map[string]string
	DefaultPaymentMethod string
	Created              int64
}

type customerJSON struct {
	ID              string              `json:"id"`
	Object          string              `json:"object"`
	Address         *struct{}           `json:"address"`
	Balance         int64               `json:"balance"`
	Created         int64               `json:"created"`
	Currency        *string             `json:"currency"`
	DefaultSource   *string             `json:"default_source"`
	Delinquent      bool                `json:"delinquent"`
	Description     *string             `json:"description"`
	Email           *string             `json:"email"`
	InvoicePrefix   string              `json:"invoice_prefix"`
	InvoiceSettings invoiceSettingsJSON `json:"invoice_settings"`
	Livemode        bool                `json:"livemode"`
	Metadata        map[string]string   `json:"metadata"`
	Name            *string             `json:"name"`
	Phone           *string             `json:"phone"`
	Shipping        *struct{}           `json:"shipping"`
	TaxExempt       string              `json:"tax_exempt"`
}

type invoiceSettingsJSON struct {
	CustomFields []struct{} `json:"custom_fields"`
	// DefaultPaymentMethod is an id string, or the object when expanded.
	DefaultPaymentMethod any       `json:"default_payment_method"`
	Footer               *string   `json:"footer"`
	RenderingOptions     *struct{} `json:"rendering_options"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func metadataOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// paymentMethod is a saved card.
type paymentMethod struct {
	ID       string
	Customer string
	// Card is the test token whose behaviour the card has.
	Card     string
	Brand    string
	Last4    string
	ExpMonth int
	ExpYear  int
	Created  int64
	// seq orders lists (newest first) when Created ties.
	seq int
}

type pmJSON struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	BillingDetails billingJSON       `json:"billing_details"`
	Card           cardJSON          `json:"card"`
	Created        int64             `json:"created"`
	Customer       *string           `json:"customer"`
	Livemode       bool              `json:"livemode"`
	Metadata       map[string]string `json:"metadata"`
	Type           string            `json:"type"`
}

type billingJSON struct {
	Address *struct{} `json:"address"`
	Email   *string   `json:"email"`
	Name    *string   `json:"name"`
	Phone   *string   `json:"phone"`
}

type cardJSON struct {
	Brand    string `json:"brand"`
	Country  string `json:"country"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	Funding  string `json:"funding"`
	Last4    string `json:"last4"`
}

func (pm *paymentMethod) render() *pmJSON {
	return &pmJSON{
		ID: pm.ID, Object: "payment_method", Created: pm.Created, Customer: optional(pm.Customer),
		Card:     cardJSON{Brand: pm.Brand, Country: "US", ExpMonth: pm.ExpMonth, ExpYear: pm.ExpYear, Funding: "credit", Last4: pm.Last4},
		Metadata: map[string]string{}, Type: "card",
	}
}

// paymentIntent is a Stripe PaymentIntent as the sandbox keeps it.
type paymentIntent struct {
	ID                 string
	Amount             int64
	AmountReceived     int64
	Currency           string
	Customer           string
	PaymentMethod      string
	Description        string
	Metadata           map[string]string
	Status             string
	Created            int64
	ClientSecret       string
	CaptureMethod      string
	ConfirmationMethod string
	PaymentMethodTypes []string
	LastPaymentError   *apiError
	LatestCharge       string
	NextAction         any
	// charged records that money moved (or is moving, when processing).
	charged bool
}

type piJSON struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Amount             int64             `json:"amount"`
	AmountCapturable   int64             `json:"amount_capturable"`
	AmountReceived     int64             `json:"amount_received"`
	CaptureMethod      string            `json:"capture_method"`
	ClientSecret       string            `json:"client_secret"`
	ConfirmationMethod string            `json:"confirmation_method"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Customer           *string           `json:"customer"`
	Description        *string           `json:"description"`
	LastPaymentError   *apiError         `json:"last_payment_error"`
	LatestCharge       *string           `json:"latest_charge"`
	Livemode           bool              `json:"livemode"`
	Metadata           map[string]string `json:"metadata"`
	NextAction         any               `json:"next_action"`
	PaymentMethod      *string           `json:"payment_method"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	Status             string            `json:"status"`
}

func (pi *paymentIntent) render() *piJSON {
	return &piJSON{
		ID: pi.ID, Object: "payment_intent", Amount: pi.Amount, AmountReceived: pi.AmountReceived,
		CaptureMethod: pi.CaptureMethod, ClientSecret: pi.ClientSecret, ConfirmationMethod: pi.ConfirmationMethod,
		Created: pi.Created, Currency: pi.Currency, Customer: optional(pi.Customer), Description: optional(pi.Description),
		LastPaymentError: pi.LastPaymentError, LatestCharge: optional(pi.LatestCharge), Metadata: metadataOrEmpty(pi.Metadata),
		NextAction: pi.NextAction, PaymentMethod: optional(pi.PaymentMethod), PaymentMethodTypes: pi.PaymentMethodTypes,
		Status: pi.Status,
	}
}

// event is a Stripe Event; body is its JSON, fixed when the event happened.
type event struct {
	ID      string
	Type    string
	Created int64
	body    []byte
}

type eventJSON struct {
	ID              string           `json:"id"`
	Object          string           `json:"object"`
	APIVersion      string           `json:"api_version"`
	Created         int64            `json:"created"`
	Data            eventDataJSON    `json:"data"`
	Livemode        bool             `json:"livemode"`
	PendingWebhooks int              `json:"pending_webhooks"`
	Request         eventRequestJSON `json:"request"`
	Type            string           `json:"type"`
}

type eventDataJSON struct {
	Object any `json:"object"`
}

type eventRequestJSON struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}
