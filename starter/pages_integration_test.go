//go:build integration

package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const pagesKey = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

// invoice page-link, invoice show and tenant portal-link print the hosted
// pages' links; the same link twice until --revoke makes a new one.
func TestPageLinks(t *testing.T) {
	st, url := newTestStore(t)
	tenant, inv := seedInvoice(t, st, "pages")

	r := runWithDB(t, url, "invoice", "page-link", "--invoice", inv)
	assert.Equal(t, exitInvalid, r.code, r.stdout)
	assert.Contains(t, r.stderr, "BILLFLOW_PUBLIC_URL")

	t.Setenv("BILLFLOW_PUBLIC_URL", "https://billing.example/")
	t.Setenv("BILLFLOW_SECRET_KEY", pagesKey)
	r = runWithDB(t, url, "invoice", "page-link", "--invoice", inv)
	require.Equal(t, 0, r.code, r.stderr)
	link := strings.TrimSpace(r.stdout)
	require.Regexp(t, `^https://billing\.example/pay/[A-Za-z0-9_-]{43}$`, link)
	require.NotContains(t, link, inv)
	r = runWithDB(t, url, "invoice", "show", "--invoice", inv)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "page")
	assert.Contains(t, r.stdout, link, "invoice show prints the same link")
	r = runWithDB(t, url, "invoice", "show", "--invoice", inv, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"payment_url": "`+link+`"`)

	r = runWithDB(t, url, "invoice", "page-link", "--invoice", inv, "--revoke")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotEqual(t, link, strings.TrimSpace(r.stdout), "a revoked link is replaced")

	r = runWithDB(t, url, "invoice", "page-link", "--invoice", "inv-nope")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "inv-nope")

	r = runWithDB(t, url, "tenant", "portal-link", "--tenant", string(tenant))
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `^https://billing\.example/account/[A-Za-z0-9_-]{43}\n$`, r.stdout)
	r = runWithDB(t, url, "tenant", "portal-link", "--tenant", strings.Repeat("ab", 32))
	assert.Equal(t, exitNotFound, r.code, r.stdout)
}
