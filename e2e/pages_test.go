//go:build integration

package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/paypage"
	"github.com/billflow/billflow/paypage/links"
	"github.com/billflow/billflow/rails/card"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
	"github.com/billflow/billflow/store"
)

// chromium finds Debian's chromium ($BILLFLOW_CHROMIUM, else
// /usr/bin/chromium); scripts/test.sh installs it when it runs as root.
// Missing, the browser tests fail saying how to install it: they are part
// of the test command, not optional.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("BILLFLOW_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no chromium at %s (BILLFLOW_CHROMIUM): install it: apt-get install chromium", path)
	}
	return path
}

// artifacts is where a browser test keeps its screenshots:
// $BILLFLOW_TEST_ARTIFACTS, else <tmp>/billflow-artifacts (t.TempDir would
// be removed with the test).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BILLFLOW_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "billflow-artifacts")
	}
	dir = filepath.Join(dir, t.Name())
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// browser is one headless Chromium with a fresh profile, sized like a phone.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(430, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, dir: artifacts(t)}
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot("failure")
		}
		cancel()
		cancelAlloc()
	})
	return b
}

// run runs steps with a deadline.
func (b *browser) run(limit time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

func (b *browser) must(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, b.run(30*time.Second, steps...))
}

// pageValue runs one action that reads a value, with a deadline.
func pageValue[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(b.t, err)
	return v
}

// pageAttr reads an attribute of the element with this id.
func pageAttr(b *browser, id, name string) string {
	b.t.Helper()
	return pageValue(b, chromedp.AttributeValue(chromedp.ID(id), name)).Value
}

// pageText reads the visible text of the element with this id.
func pageText(b *browser, id string) string {
	b.t.Helper()
	return strings.TrimSpace(pageValue(b, chromedp.Text(chromedp.ID(id))))
}

// screenshot saves the whole page as <artifacts>/<name>.png and logs where.
func (b *browser) screenshot(name string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	b.t.Logf("screenshot %s: %s", name, path)
	return path
}

// pages serves the api with the hosted pages, for the stack's worker to
// link to (BILLFLOW_PUBLIC_URL). Call after startRails, before startWorker.
func (s *stack) startPages(r *rails) (*httptest.Server, *links.Issuer) {
	t := s.t
	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { h.ServeHTTP(w, req) }))
	t.Cleanup(ts.Close)
	li, err := links.New(s.store, vaultKeyHex, ts.URL)
	require.NoError(t, err)
	cc, err := card.New(card.Config{APIKey: stripeAPIKey, BackendURL: r.stripe.URL()})
	require.NoError(t, err)
	h = (&api.Server{Billing: s.billing, Store: s.store, Token: apiToken, StripeWebhookSecret: stripeWhsec,
		Pages: &paypage.Server{Links: li, Store: s.store, Billing: s.billing, Cards: cc}}).Handler()
	s.env = append(s.env, "BILLFLOW_PUBLIC_URL="+ts.URL)
	return ts, li
}

// body returns the body of the received event of a type about a subject.
func (r *receiver) body(typ, subject string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Type == typ && strings.Contains(string(e.Body), `"subject_id":"`+subject+`"`) {
			return string(e.Body)
		}
	}
	return ""
}

var payLinkRE = regexp.MustCompile(`https?://\S+/pay/[A-Za-z0-9_-]{43}`)

// payLinkFromDM waits for the tenant's payment DM and returns its link.
func (s *stack) payLinkFromDM(r *rails, u tenantUser, invoiceID string) string {
	msg := s.waitDM(r, u, "invoice "+invoiceID)
	link := payLinkRE.FindString(msg)
	require.NotEmpty(s.t, link, "the DM carries a /pay/ link: %q", msg)
	require.NotContains(s.t, link, invoiceID, "the link is a token, not the invoice id")
	return link
}

// The invoice page from a DM's link in a real browser: a payable invoice
// with its BOLT11 as a QR code, paid from the sandbox node, turning to Paid
// without a reload; its JSON and headers; a wrong and a revoked token are
// 404.
func TestInvoicePageLightningInBrowser(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	ts, li := s.startPages(r)
	s.startWorker()
	b := newBrowser(t)
	u := s.newTenant(r, payer{card: "pm_card_visa_chargeDeclinedInsufficientFunds"})
	inv := s.bill(u, "pro")
	link := s.payLinkFromDM(r, u, inv)
	require.True(t, strings.HasPrefix(link, ts.URL+"/pay/"))

	b.must(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("qr")))
	badge, qrPayload, alt := pageText(b, "status-badge"), pageAttr(b, "qr", "data-qr-payload"), pageAttr(b, "qr", "alt")
	bolt11 := pageValue(b, chromedp.Value(chromedp.ID("bolt11")))
	live, err := s.store.LiveBolt11(ctx, inv, time.Now())
	require.NoError(t, err)
	require.Equal(t, live.PaymentRequest, bolt11, "the page shows the invoice's one payable BOLT11")
	require.Equal(t, "LIGHTNING:"+strings.ToUpper(live.PaymentRequest), qrPayload, "the QR code encodes it")
	require.Contains(t, []string{"Open", "Collecting", "Awaiting payment"}, strings.TrimSpace(badge))
	require.Contains(t, alt, "QR code")
	body, walletHref := pageValue(b, chromedp.Text(chromedp.CSS("body"))), pageAttr(b, "wallet-link", "href")
	require.Contains(t, body, "20.00 USD")
	require.Equal(t, "lightning:"+live.PaymentRequest, walletHref)
	require.NotContains(t, body, string(u.id), "no tenant key on the invoice page")
	b.screenshot("payable")
	// Opening the page again reuses the payable BOLT11.
	b.must(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("qr")))
	bolt11 = pageValue(b, chromedp.Value(chromedp.ID("bolt11")))
	require.Equal(t, live.PaymentRequest, bolt11)
	bolts, err := s.store.Bolt11s(ctx, inv)
	require.NoError(t, err)
	require.Len(t, bolts, 1)

	// The account page of a tenant in grace: its end, and the open invoice
	// linking to the same page.
	s.waitFor("grace window opened", 30*time.Second, func() (bool, error) {
		g, err := s.store.GetGraceState(ctx, u.id)
		return g.Status == store.TenantGrace, err
	})
	account, err := li.AccountURL(ctx, u.id)
	require.NoError(t, err)
	b.must(chromedp.Navigate(account), chromedp.WaitVisible(chromedp.ID("open-invoices")))
	require.Equal(t, "Grace period", pageText(b, "status-badge"))
	require.NotEmpty(t, pageText(b, "grace-ends"))
	require.Contains(t, pageText(b, "open-invoices"), inv)
	href := pageValue(b, chromedp.AttributeValue(chromedp.CSS("#open-invoices a"), "href")).Value
	require.Equal(t, link, href, "the account page links to the invoice's page")
	b.screenshot("account-grace")
	b.must(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("qr")))
	// invoice.created reached the application with the page's link.
	s.waitFor("invoice.created delivered", 30*time.Second, func() (bool, error) {
		return len(s.webhook.received("invoice.created")) > 0, nil
	})
	require.Contains(t, s.webhook.body("invoice.created", inv), `"payment_url":"`+link+`"`)

	// Headers, and the status JSON: no secret, no tenant.
	resp, err := http.Get(link + "/status")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotContains(t, string(raw), string(u.id))
	require.NotContains(t, string(raw), "cus_")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))

	// Pay from the sandbox node; the open page flips to Paid by itself.
	_, err = r.node.Pay(ctx, live.PaymentRequest)
	require.NoError(t, err)
	b.must(chromedp.WaitVisible(chromedp.ID("paid")))
	paidSeen := pageValue(b, chromedp.AttributeValue(chromedp.CSS("body"), "data-paid-seen-at")).Value
	badge, rail, ref := pageText(b, "status-badge"), pageText(b, "paid-rail"), pageText(b, "paid-ref")
	require.Equal(t, "Paid", badge)
	require.Equal(t, "Lightning", rail)
	require.True(t, strings.HasPrefix(ref, live.PaymentHash[:10]), "shortened reference %q", ref)
	payHidden := pageValue(b, chromedp.Evaluate[bool](`document.getElementById("pay").hidden`))
	require.True(t, payHidden, "nothing left to pay")
	paid, _, err := s.store.GetInvoice(ctx, inv)
	require.NoError(t, err)
	require.NotNil(t, paid.PaidAt)
	seenMs, err := strconv.ParseInt(paidSeen, 10, 64)
	require.NoError(t, err)
	t.Logf("settlement -> page shows Paid: %d ms (paid_at %s, page flipped %s; polling every 1s)",
		seenMs-paid.PaidAt.UnixMilli(), paid.PaidAt.Format(time.RFC3339Nano), time.UnixMilli(seenMs).UTC().Format(time.RFC3339Nano))
	b.screenshot("paid")

	// A wrong token and a revoked one are 404, in the browser too.
	for _, bad := range []string{ts.URL + "/pay/" + strings.Repeat("A", 43), ts.URL + "/pay/" + inv} {
		resp, err := http.Get(bad)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, bad)
	}
	b.must(chromedp.Navigate(ts.URL + "/pay/" + strings.Repeat("B", 43)))
	title := pageValue(b, chromedp.Title())
	require.Equal(t, "Page not found", title)
	revoked, err := li.Revoke(ctx, store.PageInvoice, inv)
	require.NoError(t, err)
	require.True(t, revoked)
	resp, err = http.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "a revoked link")
	fresh, err := li.InvoiceURL(ctx, inv)
	require.NoError(t, err)
	require.NotEqual(t, link, fresh)
	resp, err = http.Get(fresh)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the new link works")
}

// "Pay by card" from the page: a tenant without a card is told how to add
// one; once a card is saved, one click charges it once (a second click
// replays the same idempotency key) and the page turns to Paid. The account
// page lists the invoice and links to it.
func TestInvoicePageCardAndAccountInBrowser(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	ts, li := s.startPages(r)
	s.startWorker()
	b := newBrowser(t)
	u := s.newTenant(r, payer{})
	inv := s.bill(u, "pro")
	link := s.payLinkFromDM(r, u, inv)

	b.must(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("no-card")))
	noCard := pageText(b, "no-card")
	require.Contains(t, noCard, "No card is saved")

	cus := "cus_page_" + string(u.id)[:12]
	require.NoError(t, r.stripe.AddCustomer(stripesandbox.Customer{ID: cus, PaymentMethods: []stripesandbox.PaymentMethod{{ID: stripesandbox.CardVisa}},
		DefaultPaymentMethod: stripesandbox.CardVisa}))
	require.NoError(t, s.store.SetStripeCustomer(ctx, u.id, cus))
	b.must(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("pay-card")), chromedp.Click(chromedp.ID("pay-card")),
		chromedp.WaitVisible(chromedp.ID("paid")))
	require.Equal(t, "Paid", pageText(b, "status-badge"))
	t.Logf("card message: %q", pageText(b, "card-message"))
	s.waitFor("the invoice paid by card", 30*time.Second, func() (bool, error) {
		i, _, err := s.store.GetInvoice(ctx, inv)
		return i.Status == store.InvoicePaid && i.PaidRail == store.RailStripe, err
	})
	require.Equal(t, 1, r.stripe.ChargeCount(inv), "charged once")
	charges, err := s.store.PageCharges(ctx, inv)
	require.NoError(t, err)
	require.Len(t, charges, 1)
	require.Equal(t, "invoice/"+inv+"/card/page-1", charges[0].IdempotencyKey)
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1 AND applied`, inv))

	// A second post (another tab, a resubmitted form) charges nothing new.
	req, _ := http.NewRequest(http.MethodPost, link+"/card", nil)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Location"), "card=closed")
	require.Equal(t, 1, r.stripe.ChargeCount(inv))
	// A cross-site form post is refused.
	req, _ = http.NewRequest(http.MethodPost, link+"/card", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// The account page: standing (restored once the invoice is paid) and
	// the paid invoice, linking to its page.
	s.waitFor("the tenant restored", 30*time.Second, func() (bool, error) {
		g, err := s.store.GetGraceState(ctx, u.id)
		return g.Status == store.TenantActive, err
	})
	account, err := li.AccountURL(ctx, u.id)
	require.NoError(t, err)
	b.must(chromedp.Navigate(account), chromedp.WaitVisible(chromedp.ID("recent-invoices")))
	status, recent := pageText(b, "status-badge"), pageText(b, "recent-invoices")
	require.Equal(t, "Active", status)
	require.Contains(t, recent, inv)
	require.Contains(t, recent, "Paid")
	b.screenshot("account")
	b.must(chromedp.Click(chromedp.CSS("#recent-invoices a")), chromedp.WaitVisible(chromedp.ID("paid")))
	resp, err = http.Get(ts.URL + "/account/" + strings.Repeat("C", 43))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	invoiceToken := strings.TrimPrefix(link, ts.URL+"/pay/")
	resp, err = http.Get(ts.URL + "/account/" + invoiceToken)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "an invoice token opens no account page")
}

// contrastJS computes, in the page, the WCAG contrast ratio of every status
// badge's text against its background, from the stylesheet's computed
// colours, and lists form controls without a label and images without alt.
const contrastJS = `(() => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const out = { badges: {}, unlabeled: [], noAlt: [] };
  for (const s of ["open", "collecting", "awaiting_payment", "paid", "void", "uncollectible", "tenant-active", "tenant-grace", "tenant-suspended"]) {
    const el = document.createElement("p");
    el.className = "badge badge-" + s; el.textContent = s;
    document.body.appendChild(el);
    const cs = getComputedStyle(el);
    out.badges[s] = ratio(cs.color, cs.backgroundColor);
    el.remove();
  }
  for (const el of document.querySelectorAll("input, button, select, textarea")) {
    const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.getAttribute("aria-label") ||
      el.getAttribute("aria-labelledby") || (el.tagName === "BUTTON" && el.textContent.trim());
    if (!labelled) out.unlabeled.push(el.outerHTML.slice(0, 80));
  }
  for (const img of document.querySelectorAll("img")) {
    if (!(img.getAttribute("alt") || "").trim()) out.noAlt.push(img.outerHTML.slice(0, 80));
  }
  out.lang = document.documentElement.lang;
  return out;
})()`

type a11yReport struct {
	Badges    map[string]float64 `json:"badges"`
	Unlabeled []string           `json:"unlabeled"`
	NoAlt     []string           `json:"noAlt"`
	Lang      string             `json:"lang"`
}

// Basic accessibility of the payable invoice page: every control has a
// label, the QR code has alt text, every status badge's colours contrast
// at least 4.5:1 (WCAG AA for normal text), and the page declares its
// language.
func TestInvoicePageAccessibility(t *testing.T) {
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	s.startPages(r)
	s.startWorker()
	b := newBrowser(t)
	u := s.newTenant(r, payer{card: "pm_card_visa_chargeDeclinedInsufficientFunds"})
	inv := s.bill(u, "pro")
	link := s.payLinkFromDM(r, u, inv)
	b.must(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("qr")))
	rep := pageValue(b, chromedp.Evaluate[a11yReport](contrastJS))
	require.Empty(t, rep.Unlabeled, "controls without a label")
	require.Empty(t, rep.NoAlt, "images without alt text")
	require.Equal(t, "en", rep.Lang)
	require.Len(t, rep.Badges, 9)
	for status, ratio := range rep.Badges {
		require.False(t, math.IsNaN(ratio), status)
		require.GreaterOrEqual(t, ratio, 4.5, "contrast of the %s badge", status)
	}
	t.Logf("badge contrast ratios: %s", fmt.Sprint(rep.Badges))
}
