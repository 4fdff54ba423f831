package billing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
)

func TestSettingsConflict(t *testing.T) {
	const tenant = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
	monthlyUSD := billing.TenantState{TenantID: tenant, Currency: "usd"}
	if err := billing.SettingsConflict(monthlyUSD, "usd", 0); err != nil {
		t.Errorf("identical settings: %v", err)
	}
	tenMinEUR := billing.TenantState{TenantID: tenant, Currency: "eur", PeriodSeconds: 600}
	if err := billing.SettingsConflict(tenMinEUR, "eur", 600); err != nil {
		t.Errorf("identical settings: %v", err)
	}
	for _, c := range []struct {
		name     string
		st       billing.TenantState
		currency string
		period   int64
		want     []string
		absent   []string
	}{
		{"currency", monthlyUSD, "eur", 0, []string{"currency is usd, not eur"}, []string{"period"}},
		{"period", monthlyUSD, "usd", 600, []string{"period is calendar months, not 10m0s"}, []string{"currency"}},
		{"both", tenMinEUR, "usd", 0, []string{"currency is eur, not usd", "period is 10m0s, not calendar months"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := billing.SettingsConflict(c.st, models.Currency(c.currency), c.period)
			var ve *billing.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a validation error", err)
			}
			msg := err.Error()
			for _, w := range append(c.want, tenant) {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(msg, a) {
					t.Errorf("%q mentions %q, which did not differ", msg, a)
				}
			}
		})
	}
}
