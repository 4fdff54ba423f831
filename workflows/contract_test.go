package workflows

import (
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
)

// Package billing starts workflows by type name with contract's start
// arguments; these must decode into the workflows' own (wider) inputs
// field for field.
func TestContractStartArgumentsDecodeIntoWorkflowInputs(t *testing.T) {
	const tenant = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
	roundTrip := func(in, out any) {
		t.Helper()
		b, err := json.Marshal(in)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, out))
	}
	var tb TenantBillingInput
	roundTrip(contract.TenantBillingInput{TenantID: tenant, Currency: "eur", PeriodSeconds: 600}, &tb)
	require.Equal(t, TenantBillingInput{TenantID: tenant, Currency: "eur", PeriodSeconds: 600}, tb)

	var ip InvoicePaymentInput
	roundTrip(contract.InvoicePaymentInput{InvoiceID: "inv-1"}, &ip)
	require.Equal(t, InvoicePaymentInput{InvoiceID: "inv-1"}, ip)

	// The tenant's claim starts invoices with activities' copy of the input.
	var started InvoicePaymentInput
	begun := &activities.BeginCollectionResult{NWCSkip: "no NWC wallet connected"}
	roundTrip(activities.InvoicePaymentStart{InvoiceID: "inv-2", TenantID: tenant, Total: 500, Currency: "usd", Version: pathInvoiceV7, Begun: begun}, &started)
	require.Equal(t, InvoicePaymentInput{InvoiceID: "inv-2", TenantID: tenant, Total: 500, Currency: "usd", Version: pathInvoiceV7, Begun: begun}, started)
	require.Equal(t, []string{AttrInvoice.GetName(), AttrTenant.GetName(), AttrStatus.GetName(), AttrAmountDue.GetName()},
		activities.InvoiceStartSearchAttributes(), "the search attributes an invoice is started with")

	var gw GraceWindowInput
	roundTrip(contract.GraceWindowInput{TenantID: tenant, Window: time.Hour, BanFactor: 3}, &gw)
	require.Equal(t, GraceWindowInput{TenantID: tenant, Window: time.Hour, BanFactor: 3}, gw)

	// The type names billing starts are the names the worker registers.
	require.Equal(t, contract.WorkflowTenantBilling, funcName(TenantBilling))
	require.Equal(t, contract.WorkflowInvoicePayment, funcName(InvoicePayment))
	require.Equal(t, contract.WorkflowGraceWindow, funcName(GraceWindow))
}

// funcName is the name the SDK registers a workflow function under by
// default: the function's name without its package path.
func funcName(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	return full[strings.LastIndex(full, ".")+1:]
}
