// Command starter is billflow's operator CLI: create and inspect tenants,
// record activity, trigger renewals, inspect and settle invoices, and preview
// an invoice offline.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes: 0 success, 1 failure, 2 bad input (usage, validation or
// configuration), 3 tenant or usage session not found (exitNotFound), 4 a
// usage session refused the request (exitUsageRefused; its code on stderr).
const (
	exitFailure      = 1
	exitInvalid      = 2
	exitUsageRefused = 4
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := config.LoadStarter(os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return exitInvalid
	}
	app := newApp(stdout, stderr)
	app.cfg = cfg
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err = root.ExecuteContext(ctx)
	app.close()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "error:", err)
	var ve *billing.ValidationError
	var ue *usageError
	var refused *billing.UsageError
	switch {
	case errors.Is(err, billing.ErrTenantNotFound), errors.Is(err, billing.ErrUsageSessionNotFound):
		return exitNotFound
	case errors.As(err, &refused):
		return exitUsageRefused
	case errors.As(err, &ve) || errors.As(err, &ue):
		return exitInvalid
	}
	return exitFailure
}

// usageError is a command-line mistake.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }
