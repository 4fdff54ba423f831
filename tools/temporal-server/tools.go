//go:build tools

// Package tools pins the Temporal server and its SQL schema tool in a module
// of their own (scripts/cluster.sh builds them into .bin/), at the version the
// Temporal CLI pinned in tools/temporal embeds, so the cluster tier and the
// dev server run the same server code.
package tools

import (
	_ "go.temporal.io/server/cmd/server"
	_ "go.temporal.io/server/cmd/tools/sql"
)
