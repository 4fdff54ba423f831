package contract_test

import (
	"errors"
	"testing"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

func TestWorkflowIDs(t *testing.T) {
	const tenant models.TenantID = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
	for got, want := range map[string]string{
		contract.TenantWorkflowID(tenant):  "tenant/" + string(tenant),
		contract.GraceWorkflowID(tenant):   "grace/" + string(tenant),
		contract.InvoiceWorkflowID("inv1"): "invoice/inv1",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestMarkPaidRequestValidate(t *testing.T) {
	hash := "aa00000000000000000000000000000000000000000000000000000000000000"
	for _, ok := range []contract.MarkPaidRequest{
		{Rail: "manual", Reference: "wire-1"}, {Rail: "stripe", Reference: "pi_1"}, {Rail: "nwc", Reference: hash},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for field, bad := range map[string]contract.MarkPaidRequest{
		"rail":      {Rail: "cash"},
		"reference": {Rail: "lightning", Reference: "not-a-hash"},
		"amount":    {Rail: "manual", Amount: -1},
	} {
		var ve *contract.ValidationError
		if err := bad.Validate(); !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("%+v: got %v, want a validation error on %s", bad, err, field)
		}
	}
}

func TestCloseInvoiceRequestValidate(t *testing.T) {
	if err := (contract.CloseInvoiceRequest{Status: "void"}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (contract.CloseInvoiceRequest{Status: "paid"}).Validate(); err == nil {
		t.Error("closing as paid was accepted")
	}
}
