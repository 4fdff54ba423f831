// Package nwc is billflow's Nostr Wallet Connect (NIP-47) rail: a client that
// asks a tenant's wallet service to pay, create and look up Lightning
// invoices over Nostr relays, built on go-nostr's event, key and encryption
// primitives.
//
// The connection URL carries a private key (its secret). Nothing in this
// package prints, logs or returns it: Connection redacts itself in every
// fmt verb and in slog, parse errors never quote their input, and errors from
// lower layers that might quote key material are replaced, not wrapped.
//
// A request the wallet may have received but did not answer in time is
// reported as an *UnknownOutcomeError (errors.Is(err, ErrUnknownOutcome)),
// never as a failure: for pay_invoice the money may have moved, so callers
// check settlement (the invoice on the engine's node) before anything else.
package nwc
