package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/models"
)

// The shipped catalog loads and holds a paid SEC, a paid B and a free service.
func TestShippedServiceCatalog(t *testing.T) {
	u, err := buildUsage(filepath.Join("..", "config", "services.json"), "")
	require.NoError(t, err)
	var sec, bytes, free bool
	for _, s := range u.Services {
		switch {
		case s.Free():
			free = true
		case s.Unit == models.UnitSeconds:
			sec = true
		case s.Unit == models.UnitBytes:
			bytes = true
		}
	}
	require.True(t, sec && bytes && free, "services: %+v", u.Services)
	require.Nil(t, u.Signer, "no key, no signer")
	_, err = buildUsage(filepath.Join("..", "config", "nope.json"), "")
	require.Error(t, err, "an explicit missing catalog stops the worker")
	_, err = buildUsage("", "zz")
	require.ErrorContains(t, err, "BILLFLOW_ROBOT_KEY")
	require.NotContains(t, err.Error(), "zz")
}
