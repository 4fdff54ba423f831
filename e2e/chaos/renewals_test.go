package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestExpectedRenewals(t *testing.T) {
	a := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return a.Add(time.Duration(s) * time.Second) }
	log := []activity{
		{Tenant: "t", Type: "resource_created", Resource: "r1", Plan: "basic", At: at(0)},
		{Tenant: "t", Type: "resource_created", Resource: "r2", Plan: "free", At: at(10)},
		// At exactly the boundary: not part of that renewal.
		{Tenant: "t", Type: "resource_deactivated", Resource: "r1", At: at(60)},
		{Tenant: "t", Type: "resource_plan_changed", Resource: "r2", Plan: "pro", At: at(70)},
		{Tenant: "t", Type: "resource_plan_changed", Resource: "r1", Plan: "pro", At: at(80)},
		{Tenant: "t", Type: "resource_activated", Resource: "r1", At: at(150)},
		{Tenant: "u", Type: "resource_created", Resource: "r1", Plan: "pro", At: at(30)},
	}
	prices := map[string]int64{"free": 0, "basic": 500, "pro": 2000}
	got := expectedRenewals(log, time.Minute, at(180), prices, map[string]time.Time{"u": at(149)})
	want := map[renewalKey]bool{
		{"t", "r1", at(60)}:  true, // active on basic before its deactivation at the boundary
		{"t", "r2", at(120)}: true, // free at 60, pro by 120; r1 inactive at 120
		{"t", "r1", at(180)}: true,
		{"t", "r2", at(180)}: true,
		{"u", "r1", at(90)}:  true, // u's own anchor; suspended before 150
	}
	assert.Equal(t, want, got)
}
