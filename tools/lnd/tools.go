//go:build tools

// Package tools pins lnd (lnd, lncli) and btcd (btcd, btcctl) in a module of
// their own for the optional regtest tier (scripts/regtest.sh): real nodes,
// built from source, whose dependency graph never mixes with billflow's.
package tools

import (
	_ "github.com/btcsuite/btcd"
	_ "github.com/btcsuite/btcd/cmd/btcctl"
	_ "github.com/lightningnetwork/lnd/cmd/lncli"
	_ "github.com/lightningnetwork/lnd/cmd/lnd"
)
