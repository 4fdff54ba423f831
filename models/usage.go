package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// Metered usage (issue 10): a service catalog priced per unit, and the
// exact arithmetic that values usage. A session's receipts each cover a
// chunk of units; the payer co-signs each and it is paid by a promise on
// the payer's wallet.

// ServiceUnit is what a metered service counts.
type ServiceUnit string

// Service units.
const (
	// UnitSeconds counts seconds of service.
	UnitSeconds ServiceUnit = "SEC"
	// UnitBytes counts bytes received plus bytes sent.
	UnitBytes ServiceUnit = "B"
)

// ParseServiceUnit checks a unit name.
func ParseServiceUnit(s string) (ServiceUnit, error) {
	switch u := ServiceUnit(strings.ToUpper(strings.TrimSpace(s))); u {
	case UnitSeconds, UnitBytes:
		return u, nil
	}
	return "", invalid("unit", "%q is not SEC or B", s)
}

var serviceIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Service is a metered service in the catalog. Price is in minor units of
// the payer's currency for every Units units; a receipt covers Chunk units.
type Service struct {
	ID    string      `json:"id"`
	Name  string      `json:"name,omitempty"`
	Unit  ServiceUnit `json:"unit"`
	Price int64       `json:"price"`
	Units int64       `json:"units"`
	Chunk int64       `json:"chunk"`
	// GracePeriod is how long service goes on unpaid while the payer tops
	// up; a grace that ends unpaid bans the payer from grace for
	// BanFactor x GracePeriod.
	GracePeriod time.Duration `json:"grace_period"`
	// AllowFree: a price of 0 serves for free (mode FREE).
	AllowFree bool `json:"allow_free,omitempty"`
}

// ValidServiceID checks a service id's form (field names where it came from).
func ValidServiceID(field, id string) error {
	if !serviceIDPattern.MatchString(id) {
		return invalid(field, "%q is not 1-64 lower-case letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

// Validate checks a service as the catalog loads it.
func (s Service) Validate() error {
	if err := ValidServiceID("service.id", s.ID); err != nil {
		return err
	}
	if _, err := ParseServiceUnit(string(s.Unit)); err != nil {
		return invalid("service "+s.ID, "unit %q is not SEC or B", s.Unit)
	}
	switch {
	case s.Price < 0:
		return invalid("service "+s.ID, "price %d is negative", s.Price)
	case s.Price == 0 && !s.AllowFree:
		return invalid("service "+s.ID, "price 0 needs allow_free")
	case s.Units <= 0:
		return invalid("service "+s.ID, "units %d is not positive", s.Units)
	case s.Chunk <= 0:
		return invalid("service "+s.ID, "chunk %d is not positive", s.Chunk)
	case s.GracePeriod < 0:
		return invalid("service "+s.ID, "grace period %s is negative", s.GracePeriod)
	}
	if _, err := UsageValue(s.Price, s.Chunk, s.Units); err != nil {
		return invalid("service "+s.ID, "a chunk's value overflows: %v", err)
	}
	return nil
}

// Free reports whether the service serves without receipts.
func (s Service) Free() bool { return s.Price == 0 && s.AllowFree }

// UsageValue is price * used / units in minor units, rounded half away
// from zero, exactly (no floats, no overflow: an out-of-range value is an
// error). used and price are not negative; units is positive.
func UsageValue(price, used, units int64) (int64, error) {
	if price < 0 || used < 0 || units <= 0 {
		return 0, fmt.Errorf("usage value: price %d, used %d, units %d out of range", price, used, units)
	}
	n := new(big.Int).Mul(big.NewInt(price), big.NewInt(used))
	d := big.NewInt(units)
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	if new(big.Int).Mul(r, big.NewInt(2)).Cmp(d) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("usage value %s does not fit in 64 bits", q)
	}
	return q.Int64(), nil
}

// UsageDelta is the value of usage going from total used `before` to
// `after`: value(after) - value(before). Valuing the running total each
// time, rather than each step on its own, accumulates without rounding
// drift: the sum of the deltas is always the value of the whole.
func UsageDelta(price, before, after, units int64) (int64, error) {
	if after < before {
		return 0, fmt.Errorf("usage delta: total used went back from %d to %d", before, after)
	}
	a, err := UsageValue(price, after, units)
	if err != nil {
		return 0, err
	}
	b, err := UsageValue(price, before, units)
	if err != nil {
		return 0, err
	}
	return a - b, nil
}

// UsageErrorCode is one typed enumeration of what can go wrong in a usage
// session, shared by the workflow, the api and the CLI (the seed's codes
// plus UNIT_PRICE_TOO_HIGH).
type UsageErrorCode string

// Usage error codes; UsageErrorMeaning has each one's meaning.
const (
	UsageServiceNotFound     UsageErrorCode = "SERVICE_NOT_FOUND"
	UsageUnitPriceTooHigh    UsageErrorCode = "UNIT_PRICE_TOO_HIGH"
	UsageBannedPayer         UsageErrorCode = "RECEIPT_BANNED_PKEY_HASH"
	UsageReceiptCantFind     UsageErrorCode = "RECEIPT_CANT_FIND"
	UsageReceiptWrongPayer   UsageErrorCode = "RECEIPT_WRONG_PKEY_HASH"
	UsageReceiptBadSignature UsageErrorCode = "RECEIPT_BAD_SIGNATURE"
	UsageReceiptBadVersion   UsageErrorCode = "RECEIPT_BAD_VERSION"
	UsageReceiptNoSign       UsageErrorCode = "RECEIPT_NO_SIGN"
	UsageNotEnough           UsageErrorCode = "TX_COND_NOT_ENOUGH"
	UsageNoFunds             UsageErrorCode = "TX_COND_NOT_FOUND"
	UsageNoNewFunds          UsageErrorCode = "TX_COND_NO_NEW_COND"
	UsagePaymentError        UsageErrorCode = "TX_CREATION_ERROR"
	UsageWrongState          UsageErrorCode = "WRONG_STATE"
	UsageSessionEnded        UsageErrorCode = "SESSION_ENDED"
	UsageUnavailable         UsageErrorCode = "SERVICE_UNAVAILABLE"
	UsagePayerNotFound       UsageErrorCode = "PAYER_NOT_FOUND"
)

// UsageErrorMeaning is each code's one-line meaning (the README lists them).
var UsageErrorMeaning = map[UsageErrorCode]string{
	UsageServiceNotFound:     "the service id is not in the catalog",
	UsageUnitPriceTooHigh:    "the catalog's unit price is above the highest the client accepts",
	UsageBannedPayer:         "the payer is banned from grace for this service and has no funds",
	UsageReceiptCantFind:     "the signed receipt is not the one the session is waiting for",
	UsageReceiptWrongPayer:   "the receipt was signed by another key than the session's payer",
	UsageReceiptBadSignature: "the payer's signature (or the event's id) does not verify",
	UsageReceiptBadVersion:   "the receipt is not version 2",
	UsageReceiptNoSign:       "the payer did not sign the receipt after every re-send",
	UsageNotEnough:           "the payer's wallet cannot cover the receipt; a top-up is needed",
	UsageNoFunds:             "the grace period ended with no funds: the payer is banned from grace",
	UsageNoNewFunds:          "the payer declined to add funds",
	UsagePaymentError:        "the receipt could not be paid from the wallet",
	UsageWrongState:          "the session is not in a state that accepts this request",
	UsageSessionEnded:        "the session has ended",
	UsageUnavailable:         "the engine cannot serve paid sessions now (no signing key, or its database failed)",
	UsagePayerNotFound:       "the payer is not a tenant of the engine (it has no wallet)",
}

// ParseUsageErrorCode checks a code.
func ParseUsageErrorCode(s string) (UsageErrorCode, error) {
	c := UsageErrorCode(s)
	if _, ok := UsageErrorMeaning[c]; !ok {
		return "", invalid("code", "%q is not a usage error code", s)
	}
	return c, nil
}

// serviceEntry is a service as the catalog file writes it: the grace
// period as a Go duration string ("2m"), not nanoseconds.
type serviceEntry struct {
	Service
	GracePeriod string `json:"grace_period,omitempty"`
}

// ParseServiceCatalog reads a service catalog file ({"services": [...]}):
// unknown fields, invalid services and duplicate ids are errors naming the
// service.
func ParseServiceCatalog(data []byte) ([]Service, error) {
	var f struct {
		Services []serviceEntry `json:"services"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse service catalog: %w", err)
	}
	out := make([]Service, 0, len(f.Services))
	seen := map[string]bool{}
	for i, e := range f.Services {
		s := e.Service
		if e.GracePeriod != "" {
			d, err := time.ParseDuration(e.GracePeriod)
			if err != nil {
				return nil, invalid(fmt.Sprintf("services[%d].grace_period", i), "%q is not a duration (e.g. 2m)", e.GracePeriod)
			}
			s.GracePeriod = d
		}
		s.Unit = ServiceUnit(strings.ToUpper(string(s.Unit)))
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if seen[s.ID] {
			return nil, invalid("service "+s.ID, "appears twice in the catalog")
		}
		seen[s.ID] = true
		out = append(out, s)
	}
	return out, nil
}
