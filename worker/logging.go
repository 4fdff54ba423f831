package main

import (
	"context"
	"errors"
	"log/slog"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/activities"
)

// rejectedInput are the activity error types that mean the caller's input
// was refused (bad input, an unknown tenant or invoice, an invoice no longer
// collecting): the caller is told, billflow is fine.
var rejectedInput = map[string]bool{
	activities.ErrValidation:    true,
	activities.ErrNotFound:      true,
	activities.ErrInvoiceClosed: true,
}

// inputRejectionsAsWarnings logs rejected input at warn level. The Temporal
// SDK logs every failed activity as an error; an activity that refused bad
// input has not failed in a way an operator must act on, and error-level
// lines should mean billflow itself is in trouble.
type inputRejectionsAsWarnings struct{ slog.Handler }

func (h inputRejectionsAsWarnings) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && rejectsInput(r) {
		w := slog.NewRecord(r.Time, slog.LevelWarn, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			w.AddAttrs(a)
			return true
		})
		r = w
	}
	return h.Handler.Handle(ctx, r)
}

func (h inputRejectionsAsWarnings) WithAttrs(attrs []slog.Attr) slog.Handler {
	return inputRejectionsAsWarnings{h.Handler.WithAttrs(attrs)}
}

func (h inputRejectionsAsWarnings) WithGroup(name string) slog.Handler {
	return inputRejectionsAsWarnings{h.Handler.WithGroup(name)}
}

func rejectsInput(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		err, ok := a.Value.Any().(error)
		var appErr *temporal.ApplicationError
		if ok && errors.As(err, &appErr) && rejectedInput[appErr.Type()] {
			found = true
			return false
		}
		return true
	})
	return found
}
