package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/sandbox/relay"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
)

// TestRunServesUntilCancelled starts the command on a free port, publishes
// through the printed URL, and checks it shuts down when its context ends.
func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0"}, outW, io.Discard)
		_ = outW.Close()
	}()

	line, err := bufio.NewReader(outR).ReadString('\n')
	require.NoError(t, err)
	url := strings.TrimSpace(line)
	require.True(t, strings.HasPrefix(url, "ws://127.0.0.1:"), url)
	go func() { _, _ = io.Copy(io.Discard, outR) }()

	dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer dcancel()
	c, err := relay.Dial(dctx, url)
	require.NoError(t, err)
	ev := nostr.Event{Kind: nostr.KindTextNote, CreatedAt: nostr.Now(), Tags: nostr.Tags{}, Content: "hello"}
	require.NoError(t, ev.Sign(nostr.GeneratePrivateKey()))
	require.NoError(t, c.Publish(dctx, ev))
	c.Close()

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-dctx.Done():
		t.Fatal("run did not return after its context ended")
	}
	_, err = relay.Dial(dctx, url)
	require.Error(t, err, "the relay should no longer accept connections")
}

// TestRunRejectsBadFlags keeps flag errors from being silent.
func TestRunRejectsBadFlags(t *testing.T) {
	err := run(context.Background(), []string{"--nope"}, io.Discard, io.Discard)
	require.Error(t, err)
	err = run(context.Background(), []string{"extra"}, io.Discard, io.Discard)
	require.Error(t, err)
}
