// Package links mints and resolves the capability tokens of billflow's
// hosted pages: /pay/{token} for an invoice and /account/{token} for a
// tenant. It is small on purpose: the worker's activities (the payment DM,
// invoice.created events) and the starter CLI print links through it without
// pulling in the pages' templates and QR code library.
//
// A token is base64url(HMAC-SHA256(pageKey, kind+":"+subject+":"+version)),
// 256 bits, where pageKey = HMAC-SHA256(BILLFLOW_SECRET_KEY, "billflow page
// tokens v1"): a key of its own, so a token reveals nothing usable against
// the NWC vault that shares the secret key. Being derived, a link can be
// printed again (starter invoice show, a reminder DM) without storing it;
// the store keeps only sha256(token) with its version, and a lookup is an
// equality probe on that hash, so a wrong token and a right one cost the
// same and no comparison leaks a prefix. Revoking a token marks its row;
// the next link is the next version, a different token.
package links

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/store"
)

// purpose labels the page key's derivation from the secret key.
const purpose = "billflow page tokens v1"

// TokenLen is a token's length: 32 bytes in unpadded base64url.
const TokenLen = 43

// Issuer mints page links and resolves their tokens. It is safe for
// concurrent use.
type Issuer struct {
	store *store.Store
	key   []byte
	base  string
}

// New builds an Issuer from BILLFLOW_SECRET_KEY (64 hex digits) and
// BILLFLOW_PUBLIC_URL (the pages' base, http or https).
func New(st *store.Store, secretKeyHex, publicURL string) (*Issuer, error) {
	k, err := secret.ParseKey(secretKeyHex)
	if err != nil {
		return nil, fmt.Errorf("BILLFLOW_SECRET_KEY: %w", err)
	}
	base, err := ParseBase(publicURL)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(purpose))
	return &Issuer{store: st, key: m.Sum(nil), base: base}, nil
}

// ParseBase checks BILLFLOW_PUBLIC_URL and returns it without a trailing
// slash.
func ParseBase(publicURL string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(publicURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("BILLFLOW_PUBLIC_URL=%q is not an http(s) URL without query or fragment (e.g. https://billing.example.com)", publicURL)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Base is the pages' base URL.
func (i *Issuer) Base() string { return i.base }

// Token is the token of a kind (store.PageInvoice, store.PageAccount),
// subject and version.
func (i *Issuer) Token(kind, subject string, version int) string {
	m := hmac.New(sha256.New, i.key)
	m.Write([]byte(kind + ":" + subject + ":" + strconv.Itoa(version)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Hash is what the store keeps of a token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func (i *Issuer) ensure(ctx context.Context, kind, subject string) (string, error) {
	v, err := i.store.EnsurePageToken(ctx, kind, subject, func(v int) []byte { return Hash(i.Token(kind, subject, v)) })
	if err != nil {
		return "", err
	}
	return i.Token(kind, subject, v), nil
}

// InvoiceURL is the invoice's page, <base>/pay/<token>, creating its token
// on first use. An unknown invoice is store.ErrNotFound.
func (i *Issuer) InvoiceURL(ctx context.Context, invoiceID string) (string, error) {
	tok, err := i.ensure(ctx, store.PageInvoice, invoiceID)
	if err != nil {
		return "", err
	}
	return i.base + "/pay/" + tok, nil
}

// AccountURL is the tenant's account page, <base>/account/<token>.
func (i *Issuer) AccountURL(ctx context.Context, tenant models.TenantID) (string, error) {
	tok, err := i.ensure(ctx, store.PageAccount, string(tenant))
	if err != nil {
		return "", err
	}
	return i.base + "/account/" + tok, nil
}

// Revoke revokes the live token of an invoice or tenant: its link answers
// 404 from now on, and the next link has a new token.
func (i *Issuer) Revoke(ctx context.Context, kind, subject string) (bool, error) {
	return i.store.RevokePageTokens(ctx, kind, subject, time.Now())
}

// ErrUnknownToken is a token that is malformed, wrong or revoked.
var ErrUnknownToken = errors.New("unknown page token")

// Resolve returns the subject of a live token of the given kind. A token of
// the wrong shape is refused before any lookup; a wrong, revoked or
// other-kind token is ErrUnknownToken.
func (i *Issuer) Resolve(ctx context.Context, kind, token string) (string, error) {
	if !WellFormed(token) {
		return "", ErrUnknownToken
	}
	t, err := i.store.LookupPageToken(ctx, Hash(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Kind != kind) {
		return "", ErrUnknownToken
	}
	if err != nil {
		return "", err
	}
	return t.Subject, nil
}

// WellFormed reports whether s has a token's shape (43 base64url
// characters); it says nothing about the token being valid.
func WellFormed(s string) bool {
	if len(s) != TokenLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
