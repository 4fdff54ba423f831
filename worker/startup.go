package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/store"
)

// startupWait is how long a starting worker keeps trying to reach
// PostgreSQL and the Temporal server: one of them restarting (a crash, a
// rolling upgrade) must not stop a worker started meanwhile, which nothing
// may restart (found by the chaos test: a worker restarted while the
// Temporal server restarted exited for good).
const startupWait = 2 * time.Minute

// unreachable reports whether err means a server could not be reached yet
// (refused, reset, timed out, starting up), as opposed to a configuration
// error that waiting will not fix.
func unreachable(err error) bool {
	var unavailable *serviceerror.Unavailable
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code == "57P03" // cannot_connect_now: starting up, shutting down, recovering
	case errors.As(err, &unavailable), errors.As(err, &connErr), errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	// The SDK's dial error wraps gRPC's transport error as text only.
	return strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "connection reset")
}

// untilReachable calls connect until it succeeds, fails for another reason
// than an unreachable server, wait has passed, or ctx ends.
func untilReachable(ctx context.Context, logger *slog.Logger, what string, wait time.Duration, connect func() error) error {
	deadline := time.Now().Add(wait)
	delay := 250 * time.Millisecond
	for {
		err := connect()
		if err == nil || !unreachable(err) || ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return err
		}
		logger.Warn("cannot reach "+what+" yet; trying again", "error", err, "in", delay.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// openStore connects to PostgreSQL, waiting up to wait for it.
func openStore(ctx context.Context, logger *slog.Logger, url string, wait time.Duration) (*store.Store, error) {
	var st *store.Store
	err := untilReachable(ctx, logger, "PostgreSQL", wait, func() error {
		var err error
		st, err = store.Open(ctx, url)
		return err
	})
	return st, err
}

// dialTemporal connects to the Temporal server, waiting up to wait for it,
// with options configured by payloadcodec.Configure in the caller (run).
func dialTemporal(ctx context.Context, logger *slog.Logger, opts client.Options, wait time.Duration) (client.Client, error) {
	var tc client.Client
	err := untilReachable(ctx, logger, "the Temporal server at "+opts.HostPort, wait, func() error {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		tc, err = client.DialContext(dctx, opts)
		return err
	})
	return tc, err
}
