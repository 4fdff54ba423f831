package bench

import (
	"net/http"
	"sync/atomic"
)

// atomicHandler holds an http.Handler set once, read concurrently.
type atomicHandler struct{ v atomic.Value }

func (a *atomicHandler) Store(h http.Handler) { a.v.Store(&h) }

func (a *atomicHandler) Load() http.Handler {
	p, _ := a.v.Load().(*http.Handler)
	if p == nil {
		return nil
	}
	return *p
}

// quietLogger drops the SDK's client logs: the harness prints a table, and
// the worker's own log is kept in a file.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
