package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
)

// defaultServices is read when BILLFLOW_SERVICES is unset and it exists.
const defaultServices = "config/services.json"

// buildUsage loads the metered service catalog (BILLFLOW_SERVICES, else
// config/services.json when present) and the receipt signer from the
// engine's Nostr key (BILLFLOW_ROBOT_KEY; without it paid sessions are
// refused with SERVICE_UNAVAILABLE).
func buildUsage(path, robotKey string) (activities.Usage, error) {
	u := activities.Usage{Services: map[string]models.Service{}}
	svcs, err := loadServices(path)
	if err != nil {
		return u, err
	}
	for _, s := range svcs {
		u.Services[s.ID] = s
	}
	if robotKey != "" {
		if u.Signer, err = receipts.NewSigner(robotKey); err != nil {
			return u, fmt.Errorf("BILLFLOW_ROBOT_KEY: %w", err)
		}
	}
	return u, nil
}

func loadServices(path string) ([]models.Service, error) {
	explicit := path != ""
	if !explicit {
		path = defaultServices
	}
	data, err := os.ReadFile(path)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read service catalog (BILLFLOW_SERVICES): %w", err)
	}
	svcs, err := models.ParseServiceCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("service catalog %s: %w", path, err)
	}
	return svcs, nil
}

// usageNotifier is package billing's notifier plus the usage-funds signal
// the settle path sends to sessions waiting for funds.
type usageNotifier struct {
	*billing.Client
	tc client.Client
}

var _ activities.UsageNotifier = usageNotifier{}

// Settle tells the tenant of a paid invoice through the worker's Notifier (invoice-v6).
var _ activities.TenantTeller = usageNotifier{}

// SignalUsageFunds signals usage/<session> that its payer has new funds.
func (n usageNotifier) SignalUsageFunds(ctx context.Context, sessionID string, sig contract.UsageFundsSignal) error {
	return n.tc.SignalWorkflow(ctx, contract.UsageSessionWorkflowID(sessionID), "", contract.SignalUsageFunds, sig)
}
