package stripesandbox

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// expandable lists the expansions the sandbox supports per object; Stripe
// rejects others, and so does the sandbox rather than silently ignoring them.
var customerExpansions = map[string]bool{"invoice_settings.default_payment_method": true}

func checkExpand(v url.Values, allowed map[string]bool) (map[string]bool, *apiError) {
	out := map[string]bool{}
	for _, e := range list(v, "expand") {
		if !allowed[e] {
			bad := invalidRequest("expand", "This property cannot be expanded ("+e+").")
			return nil, &bad
		}
		out[e] = true
	}
	return out, nil
}

// renderCustomer renders c; callers hold s.mu.
func (s *Server) renderCustomer(c *customer, expand map[string]bool) *customerJSON {
	var def any
	if c.DefaultPaymentMethod != "" {
		def = c.DefaultPaymentMethod
		if pm, ok := s.paymentMethods[c.DefaultPaymentMethod]; ok && expand["invoice_settings.default_payment_method"] {
			def = pm.render()
		}
	}
	return &customerJSON{
		ID: c.ID, Object: "customer", Created: c.Created, Description: optional(c.Description), Email: optional(c.Email),
		InvoicePrefix:   strings.ToUpper(c.ID[len(c.ID)-min(8, len(c.ID)-4):]),
		InvoiceSettings: invoiceSettingsJSON{CustomFields: nil, DefaultPaymentMethod: def},
		Metadata:        metadataOrEmpty(c.Metadata), Name: optional(c.Name), TaxExempt: "none",
	}
}

var customerParams = []string{"email", "name", "description", "metadata[", "payment_method", "invoice_settings[default_payment_method]", "expand["}

func (s *Server) createCustomer(req *apiRequest) response {
	if k := unknownParams(req.params, customerParams...); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	expand, bad := checkExpand(req.params, customerExpansions)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &customer{ID: newID("cus"), Created: s.now().Unix()}
	if bad := s.applyCustomerParams(c, req.params); bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	s.customers[c.ID] = c
	return ok(s.renderCustomer(c, expand))
}

func (s *Server) updateCustomer(req *apiRequest) response {
	if k := unknownParams(req.params, customerParams...); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	expand, bad := checkExpand(req.params, customerExpansions)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.customers[req.r.PathValue("id")]
	if !found {
		return fail(http.StatusNotFound, noSuch("customer", "id", req.r.PathValue("id")))
	}
	if bad := s.applyCustomerParams(c, req.params); bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	return ok(s.renderCustomer(c, expand))
}

// applyCustomerParams sets fields from create/update parameters, attaching
// payment_method and checking the default belongs to the customer. Callers
// hold s.mu.
func (s *Server) applyCustomerParams(c *customer, v url.Values) *apiError {
	if v.Has("email") {
		c.Email = v.Get("email")
	}
	if v.Has("name") {
		c.Name = v.Get("name")
	}
	if v.Has("description") {
		c.Description = v.Get("description")
	}
	if md := hash(v, "metadata"); len(md) > 0 {
		if c.Metadata == nil {
			c.Metadata = map[string]string{}
		}
		for k, val := range md {
			if val == "" {
				delete(c.Metadata, k) // Stripe unsets a key given an empty value
			} else {
				c.Metadata[k] = val
			}
		}
	}
	if v.Has("payment_method") {
		if _, bad := s.attachLocked(v.Get("payment_method"), c.ID, "payment_method"); bad != nil {
			return bad
		}
	}
	if v.Has("invoice_settings[default_payment_method]") {
		id := v.Get("invoice_settings[default_payment_method]")
		if id != "" {
			pm, found := s.paymentMethods[id]
			if !found {
				e := noSuch("PaymentMethod", "invoice_settings[default_payment_method]", id)
				return &e
			}
			if pm.Customer != c.ID {
				e := invalidRequest("invoice_settings[default_payment_method]",
					"The customer does not have a payment method with the ID "+id+". The payment method must be attached to the customer.")
				return &e
			}
		}
		c.DefaultPaymentMethod = id
	}
	return nil
}

func (s *Server) getCustomer(req *apiRequest) response {
	expand, bad := checkExpand(req.params, customerExpansions)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.customers[req.r.PathValue("id")]
	if !found {
		return fail(http.StatusNotFound, noSuch("customer", "id", req.r.PathValue("id")))
	}
	return ok(s.renderCustomer(c, expand))
}

// attachLocked attaches a payment method to a customer. A test id makes a
// new card with its behaviour, as Stripe does. Callers hold s.mu.
func (s *Server) attachLocked(id, customerID, param string) (*paymentMethod, *apiError) {
	if b, isTest := testCards[id]; isTest {
		s.seq++
		pm := &paymentMethod{ID: newID("pm"), Customer: customerID, Card: id, Brand: b.brand, Last4: b.last4,
			ExpMonth: 12, ExpYear: s.now().Year() + 3, Created: s.now().Unix(), seq: s.seq}
		s.paymentMethods[pm.ID] = pm
		return pm, nil
	}
	pm, found := s.paymentMethods[id]
	if !found {
		e := noSuch("PaymentMethod", param, id)
		return nil, &e
	}
	if pm.Customer != "" && pm.Customer != customerID {
		e := invalidRequest(param, "The payment method you provided has already been attached to a customer.")
		return nil, &e
	}
	pm.Customer = customerID
	return pm, nil
}

func (s *Server) attachPaymentMethod(req *apiRequest) response {
	if k := unknownParams(req.params, "customer", "expand["); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	cust := req.params.Get("customer")
	if cust == "" {
		return fail(http.StatusBadRequest, missingParam("customer"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, found := s.customers[cust]; !found {
		return fail(http.StatusBadRequest, noSuch("customer", "customer", cust))
	}
	pm, bad := s.attachLocked(req.r.PathValue("id"), cust, "payment_method")
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	return ok(pm.render())
}

func (s *Server) getPaymentMethod(req *apiRequest) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	pm, found := s.resolvePaymentMethod(req.r.PathValue("id"))
	if !found {
		return fail(http.StatusNotFound, noSuch("PaymentMethod", "id", req.r.PathValue("id")))
	}
	return ok(pm.render())
}

// listPaymentMethods is GET /v1/payment_methods?customer=...&type=card.
func (s *Server) listPaymentMethods(req *apiRequest) response {
	cust := req.params.Get("customer")
	if cust == "" {
		return fail(http.StatusBadRequest, missingParam("customer"))
	}
	return s.paymentMethodList(req, cust, "/v1/payment_methods")
}

// listCustomerPaymentMethods is GET /v1/customers/{id}/payment_methods.
func (s *Server) listCustomerPaymentMethods(req *apiRequest) response {
	id := req.r.PathValue("id")
	return s.paymentMethodList(req, id, "/v1/customers/"+id+"/payment_methods")
}

func (s *Server) paymentMethodList(req *apiRequest, cust, path string) response {
	if k := unknownParams(req.params, "customer", "type", "limit", "starting_after", "ending_before", "expand["); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	limit, bad := limitParam(req.params)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	if t := req.params.Get("type"); t != "" && t != "card" {
		// Only cards exist in the sandbox: any other type lists nothing.
		return ok(listJSON{Object: "list", URL: path, Data: []any{}})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, found := s.customers[cust]; !found {
		return fail(http.StatusNotFound, noSuch("customer", "customer", cust))
	}
	var pms []*paymentMethod
	for _, pm := range s.paymentMethods {
		if pm.Customer == cust {
			pms = append(pms, pm)
		}
	}
	sort.Slice(pms, func(i, j int) bool { return pms[i].seq > pms[j].seq }) // newest first, as Stripe lists
	ids := make([]string, len(pms))
	for i, pm := range pms {
		ids[i] = pm.ID
	}
	from, to, hasMore, bad := page(ids, req.params.Get("starting_after"), limit)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	data := make([]any, 0, to-from)
	for _, pm := range pms[from:to] {
		data = append(data, pm.render())
	}
	return ok(listJSON{Object: "list", URL: path, HasMore: hasMore, Data: data})
}

// page selects one page of ids after startingAfter.
func page(ids []string, startingAfter string, limit int) (from, to int, hasMore bool, bad *apiError) {
	if startingAfter != "" {
		from = -1
		for i, id := range ids {
			if id == startingAfter {
				from = i + 1
			}
		}
		if from < 0 {
			e := invalidParam("starting_after", "No such object: '"+startingAfter+"'")
			return 0, 0, false, &e
		}
	}
	to = min(from+limit, len(ids))
	return from, to, to < len(ids), nil
}
