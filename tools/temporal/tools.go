//go:build tools

// Package tools pins the Temporal CLI (dev server + Web UI) in a module of its
// own, so its large dependency graph never mixes with billflow's.
package tools

import _ "github.com/temporalio/cli/cmd/temporal"
