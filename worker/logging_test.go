package main

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/activities"
)

// TestRejectedInputIsNotAnError: the SDK's "Activity error." line for an
// activity that refused bad input comes out at warn level; a real failure
// stays an error.
func TestRejectedInputIsNotAnError(t *testing.T) {
	var buf bytes.Buffer
	logger := log.NewStructuredLogger(slog.New(inputRejectionsAsWarnings{slog.NewTextHandler(&buf, nil)}))

	logger.Error("Activity error.", "ActivityType", "RecordActivity", "Error",
		temporal.NewNonRetryableApplicationError("unknown plan \"gold\"", activities.ErrValidation, nil))
	assert.Contains(t, buf.String(), "level=WARN")
	assert.Contains(t, buf.String(), "unknown plan")
	assert.NotContains(t, buf.String(), "level=ERROR")

	buf.Reset()
	logger.Error("Activity error.", "ActivityType", "Settle", "Error", errors.New("connection refused"))
	assert.Contains(t, buf.String(), "level=ERROR")

	buf.Reset()
	logger.Error("Activity error.", "Error", temporal.NewApplicationError("db down", "Unavailable"))
	assert.Contains(t, buf.String(), "level=ERROR")
}
