package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// nudger wakes the event outbox after transactions wrote events, without
// making each activity wait for a signal to the one outbox workflow: a
// nudge returns at once, and nudges that arrive while a signal is on its
// way are answered by one more signal after it. The outbox delivers
// everything written when it wakes, so one signal after the last write
// loses nothing; and it also sweeps on a timer, so a signal lost with the
// worker only delays delivery. In a renewal storm every invoice wrote two
// events and sent two signals (about 90 ms each, all to one workflow).
type nudger struct {
	signal  func(context.Context) error
	timeout time.Duration
	logger  *slog.Logger

	mu      sync.Mutex
	pending bool // a nudge arrived since the running signal started
	running bool // a goroutine is sending
}

// newNudger returns a nudger that wakes the outbox with signal, each call
// bounded by timeout.
func newNudger(signal func(context.Context) error, timeout time.Duration, logger *slog.Logger) *nudger {
	return &nudger{signal: signal, timeout: timeout, logger: logger}
}

// Nudge asks for a signal to the outbox; it never blocks and never fails
// (the activity's context is not used: the signal outlives the activity).
func (n *nudger) Nudge(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		n.pending = true
		return nil
	}
	n.running = true
	go n.run()
	return nil
}

// run sends signals until no nudge is left unanswered.
func (n *nudger) run() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
		if err := n.signal(ctx); err != nil {
			n.logger.Warn("outbox nudge failed; the next sweep delivers", "error", err)
		}
		cancel()
		n.mu.Lock()
		if !n.pending {
			n.running = false
			n.mu.Unlock()
			return
		}
		n.pending = false
		n.mu.Unlock()
	}
}
