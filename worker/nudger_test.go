package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Nudges during a signal coalesce into one more signal after it; a nudge
// never waits for the signal; a nudge after the last signal started is
// always answered by a signal that starts after it.
func TestNudgerCoalescesAndLosesNoWakeUp(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	var lastStart atomic.Int64
	n := newNudger(func(context.Context) error {
		lastStart.Store(time.Now().UnixNano())
		calls.Add(1)
		<-release
		return nil
	}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))

	require.NoError(t, n.Nudge(context.Background()))
	require.Eventually(t, func() bool { return calls.Load() == 1 }, time.Second, time.Millisecond)
	// 100 nudges while the first signal is held: they return at once.
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, n.Nudge(context.Background())) }()
	}
	wg.Wait()
	lastNudge := time.Now().UnixNano()
	release <- struct{}{} // the first signal ends; one follow-up starts
	require.Eventually(t, func() bool { return calls.Load() == 2 }, time.Second, time.Millisecond)
	require.Greater(t, lastStart.Load(), lastNudge, "the follow-up started after the last nudge")
	release <- struct{}{}
	require.Eventually(t, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return !n.running
	}, time.Second, time.Millisecond)
	require.EqualValues(t, 2, calls.Load(), "101 nudges, 2 signals")

	// Idle again: the next nudge signals again.
	go func() { release <- struct{}{} }()
	require.NoError(t, n.Nudge(context.Background()))
	require.Eventually(t, func() bool { return calls.Load() == 3 }, time.Second, time.Millisecond)
}

// A failed signal is logged and does not stop later nudges.
func TestNudgerGoesOnAfterAFailure(t *testing.T) {
	var calls atomic.Int32
	n := newNudger(func(ctx context.Context) error {
		calls.Add(1)
		_, ok := ctx.Deadline()
		require.True(t, ok, "each signal is time-bounded")
		return context.DeadlineExceeded
	}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, n.Nudge(context.Background()))
	require.Eventually(t, func() bool { return calls.Load() == 1 }, time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return !n.running
	}, time.Second, time.Millisecond)
	require.NoError(t, n.Nudge(context.Background()))
	require.Eventually(t, func() bool { return calls.Load() == 2 }, time.Second, time.Millisecond)
}
