//go:build tools

// Package tools pins the linters billflow's test command runs, in a module of
// their own so their dependencies never mix with billflow's (and billflow's
// replace directives never leak into them).
package tools

import (
	_ "go.temporal.io/sdk/contrib/tools/workflowcheck"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
