package models

import "fmt"

// ValidationError is bad input that must reach the caller: retrying cannot fix it.
type ValidationError struct {
	// Field names what was wrong, e.g. "plan_id" or "activity a-17".
	Field string
	// Reason says why, in words a caller can act on.
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// invalid builds a ValidationError with a formatted reason.
func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
