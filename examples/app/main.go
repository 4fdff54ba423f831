// Command app is the smallest application of billflow's client package:
// it records one billable activity for a tenant and prints the item billed.
//
//	TEMPORAL_ADDRESS=localhost:7233 BILLFLOW_PAYLOAD_KEYS=... go run . <tenant-pubkey>
//
// (BILLFLOW_PAYLOAD_KEYS: the worker's keys; `source .data/env` sets both.)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/payloadcodec"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return errors.New("usage: app TENANT_PUBKEY")
	}
	addr := os.Getenv("TEMPORAL_ADDRESS")
	if addr == "" {
		addr = client.DefaultHostPort
	}
	// billflow's workflows store their payloads encrypted: a client reads
	// and writes them with the same keys (BILLFLOW_PAYLOAD_KEYS) as the worker.
	opts := client.Options{HostPort: addr}
	if _, err := payloadcodec.Configure(&opts, os.Environ()); err != nil {
		return err
	}
	tc, err := client.Dial(opts)
	if err != nil {
		return err
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	bc := billing.New(tc, "")
	res, err := bc.RecordActivity(ctx, os.Args[1], billing.Activity{
		ID: "app-relay-1", Type: models.ResourceCreated, ResourceID: "relay-1", PlanID: "pro",
		CreateTenant: true,
	})
	var bad *billing.ValidationError
	switch {
	case errors.As(err, &bad):
		return fmt.Errorf("rejected: %w", err)
	case errors.Is(err, billing.ErrTenantNotFound):
		return err
	case err != nil:
		return err // *billing.UnavailableError: worth retrying later
	}
	if res.Item == nil {
		fmt.Println("recorded; nothing billed")
		return nil
	}
	fmt.Printf("recorded; billed %d minor units: %s\n", res.Item.Amount, res.Item.Description)
	return nil
}
