package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/store"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestUnreachableTellsWaitingFromMisconfiguration(t *testing.T) {
	addr := closedAddr(t)
	_, err := store.Open(t.Context(), "postgres://u@"+addr+"/db?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	assert.True(t, unreachable(err), "PostgreSQL refusing connections: %v", err)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = client.DialContext(ctx, client.Options{HostPort: addr})
	require.Error(t, err)
	assert.True(t, unreachable(err), "Temporal refusing connections: %v", err)

	assert.True(t, unreachable(&pgconn.PgError{Code: "57P03"}), "starting up")
	assert.False(t, unreachable(&pgconn.PgError{Code: "28P01"}), "a wrong password does not heal")
	_, err = store.Open(t.Context(), "not a url")
	assert.False(t, unreachable(err))
}

func TestUntilReachableStopsOnOtherErrorsAndAtTheDeadline(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	calls := 0
	bad := errors.New("bad configuration")
	err := untilReachable(t.Context(), log, "x", time.Minute, func() error { calls++; return bad })
	assert.ErrorIs(t, err, bad)
	assert.Equal(t, 1, calls)

	calls = 0
	refused := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	err = untilReachable(t.Context(), log, "x", 0, func() error { calls++; return refused })
	assert.Error(t, err)
	assert.Equal(t, 1, calls, "no time to wait: one try")

	calls = 0
	err = untilReachable(t.Context(), log, "x", time.Minute, func() error {
		if calls++; calls < 3 {
			return refused
		}
		return nil
	})
	assert.NoError(t, err)
	assert.Equal(t, 3, calls)
}
