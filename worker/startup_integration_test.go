//go:build integration

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// lateProxy forwards a free loopback port to target, but only after the
// returned open function is called: until then the port refuses
// connections, as a server being restarted does.
func lateProxy(t *testing.T, target string) (addr string, open func()) {
	t.Helper()
	addr = closedAddr(t)
	var once sync.Once
	return addr, func() {
		once.Do(func() {
			ln, err := net.Listen("tcp", addr)
			require.NoError(t, err)
			t.Cleanup(func() { _ = ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer func() { _ = c.Close() }()
						u, err := net.Dial("tcp", target)
						if err != nil {
							return
						}
						defer func() { _ = u.Close() }()
						go func() { _, _ = io.Copy(u, c) }()
						_, _ = io.Copy(c, u)
					}()
				}
			}()
		})
	}
}

// A worker started while the Temporal server restarts waits for it instead
// of exiting (the chaos test's worker-2, restarted during the server's
// restart, exited for good with "connection refused").
func TestDialTemporalWaitsForTheServer(t *testing.T) {
	target := os.Getenv("TEMPORAL_ADDRESS")
	require.NotEmpty(t, target, "TEMPORAL_ADDRESS")
	addr, open := lateProxy(t, target)
	time.AfterFunc(time.Second, open)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tc, err := dialTemporal(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), client.Options{HostPort: addr, Namespace: "default"}, time.Minute)
	require.NoError(t, err)
	tc.Close()
}

// Likewise for PostgreSQL.
func TestOpenStoreWaitsForPostgres(t *testing.T) {
	raw := os.Getenv("BILLFLOW_TEST_DATABASE_URL")
	require.NotEmpty(t, raw, "BILLFLOW_TEST_DATABASE_URL")
	u, err := url.Parse(raw)
	require.NoError(t, err)
	addr, open := lateProxy(t, u.Host)
	u.Host = addr
	time.AfterFunc(time.Second, open)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := openStore(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), u.String(), time.Minute)
	require.NoError(t, err)
	st.Close()
}
