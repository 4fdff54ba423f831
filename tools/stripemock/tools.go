//go:build tools

// Package tools pins stripe-mock, Stripe's stateless API mock that validates
// requests against Stripe's OpenAPI spec, in a module of its own so its
// dependencies never mix with billflow's (and billflow's replace directives
// never leak into it). rails/card's integration test runs our request shapes
// against it.
package tools

import _ "github.com/stripe/stripe-mock"
