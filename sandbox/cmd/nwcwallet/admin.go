package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// faults is the wallet's fault switches as the admin endpoint reads and
// sets them (every field optional on POST).
type faults struct {
	// ReplyDelay holds every answer back this long after the work is done
	// (a payment is made, its answer comes late): longer than the client's
	// timeout crosses the outcome-unknown window. "0s" releases held answers.
	ReplyDelay *string `json:"reply_delay,omitempty"`
	// Silent leaves every request unanswered and undone.
	Silent *bool `json:"silent,omitempty"`
	// DropNext leaves the next n requests unanswered and undone.
	DropNext *int `json:"drop_next,omitempty"`
	// BalanceMsat sets the balance: a long test pays more than the
	// starting balance covers.
	BalanceMsat *int64 `json:"balance_msat,omitempty"`
}

// switches is the part of the wallet the admin endpoint drives.
type switches interface {
	SetReplyDelay(time.Duration)
	SetSilent(bool)
	DropNext(int)
	SetBalance(int64)
	Balance() int64
}

// admin serves the fault switches over HTTP:
//
//	GET  /_sandbox/faults   the switches as last set
//	POST /_sandbox/faults   {"reply_delay":"25s","silent":false,"drop_next":2,"balance_msat":N}
//	POST /_sandbox/reset    everything off
type admin struct {
	w   switches
	mu  sync.Mutex
	cur struct {
		ReplyDelay  string `json:"reply_delay"`
		Silent      bool   `json:"silent"`
		DropNext    int    `json:"drop_next"`
		BalanceMsat int64  `json:"balance_msat"`
	}
}

func newAdmin(w switches, delay time.Duration, silent bool) *admin {
	a := &admin{w: w}
	a.cur.ReplyDelay, a.cur.Silent = delay.String(), silent
	return a
}

func (a *admin) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sandbox/faults", func(w http.ResponseWriter, _ *http.Request) { a.reply(w) })
	mux.HandleFunc("POST /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var f faults
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			http.Error(w, "bad JSON body (want reply_delay, silent, drop_next): "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := a.apply(f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.reply(w)
	})
	mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, _ *http.Request) {
		zero, off, none := "0s", false, 0
		_ = a.apply(faults{ReplyDelay: &zero, Silent: &off, DropNext: &none})
		a.reply(w)
	})
	return mux
}

// apply checks every field first, so a bad request changes nothing.
func (a *admin) apply(f faults) error {
	var delay time.Duration
	if f.ReplyDelay != nil {
		d, err := time.ParseDuration(*f.ReplyDelay)
		if err != nil || d < 0 {
			return fmt.Errorf("reply_delay %q is not a non-negative duration such as 25s", *f.ReplyDelay)
		}
		delay = d
	}
	if f.DropNext != nil && *f.DropNext < 0 {
		return fmt.Errorf("drop_next %d is negative", *f.DropNext)
	}
	if f.BalanceMsat != nil && *f.BalanceMsat < 0 {
		return fmt.Errorf("balance_msat %d is negative", *f.BalanceMsat)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if f.ReplyDelay != nil {
		a.w.SetReplyDelay(delay)
		a.cur.ReplyDelay = delay.String()
	}
	if f.Silent != nil {
		a.w.SetSilent(*f.Silent)
		a.cur.Silent = *f.Silent
	}
	if f.DropNext != nil {
		a.w.DropNext(*f.DropNext)
		a.cur.DropNext = *f.DropNext
	}
	if f.BalanceMsat != nil {
		a.w.SetBalance(*f.BalanceMsat)
	}
	return nil
}

func (a *admin) reply(w http.ResponseWriter) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cur.BalanceMsat = a.w.Balance()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a.cur)
}

// serveAdmin listens on addr (loopback only: the switches have no
// authentication) and serves until ctx ends; it returns the base URL.
func serveAdmin(ctx context.Context, addr string, a *admin) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--admin-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("--admin-addr %q must be a loopback address: the fault switches have no authentication", addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--admin-addr: %w", err)
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return
		}
	}()
	return "http://" + ln.Addr().String(), nil
}
