package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMalformedConfigurationStopsEveryCommand: the starter validates its
// configuration before running anything, naming the variable, never its value.
func TestMalformedConfigurationStopsEveryCommand(t *testing.T) {
	t.Setenv("BILLFLOW_SECRET_KEY", "not-a-hex-key")
	r := runCLI(t, "tenant", "list")
	assert.Equal(t, exitInvalid, r.code)
	assert.Contains(t, r.stderr, "BILLFLOW_SECRET_KEY is not 64 hex digits")
	assert.NotContains(t, r.stderr, "not-a-hex-key")
	assert.Empty(t, r.stdout)
}
