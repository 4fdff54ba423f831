//go:build tools

// Package tools pins the Temporal Web UI server in a module of its own, at
// the version the Temporal CLI pinned in tools/temporal embeds (the dev
// server's UI), so scripts/cluster.sh can serve the same UI against the
// cluster tier's Temporal server (.bin/temporal-ui).
package tools

import _ "github.com/temporalio/ui-server/v2/cmd/server"
