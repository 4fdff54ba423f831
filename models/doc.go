// Package models holds billflow's billing rules as pure functions over plain
// values: money, billing periods, proration, the activity fold, renewals and
// invoice claims. It does no I/O and knows nothing of Temporal or Postgres, so
// the workflows, the store and the offline preview all run the same code.
package models
