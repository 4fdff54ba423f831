// Command nwcwallet runs billflow's sandbox NWC (NIP-47) wallet service
// (sandbox/nwcwallet) on one or more relays until SIGINT or SIGTERM, paying
// invoices through the sandbox Lightning node. See the usage text.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/nbd-wtf/go-nostr"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/sandbox/nwcwallet"
)

// Files kept in --dir.
const (
	keyFile     = "wallet.key"     // the wallet service's private key, hex
	clientsFile = "clients"        // authorised client public keys, one per line
	urlFile     = "connection.url" // minted connection URLs, secret included
	envFile     = "nwcwallet.env"  // NWC_* variables, as printed on stdout
	lnnodeEnv   = "lnnode.env"     // what `lnnode serve --dir` writes
)

const usage = `nwcwallet: billflow's sandbox Nostr Wallet Connect (NIP-47) wallet service.

It listens for NIP-47 requests on the given relays, answers in NIP-44 v2 or
NIP-04, keeps a balance in millisatoshis (reset at every start), and pays
invoices through the sandbox Lightning node's pay endpoint.

Usage:
  nwcwallet --dir DIR --relay URL [--relay URL ...] [--lnnode-dir DIR | --pay-url URL]
            [--balance-msat N] [--nip04-only] [--connections N] [-v]
            [--admin-addr ADDR] [--reply-delay D] [--silent]

DIR keeps the wallet's identity across restarts:
  DIR/wallet.key       the wallet service's private key (hex, 0600)
  DIR/clients          the client public keys it authorised
  DIR/connection.url   the connection URLs minted so far, one per line (0600).
                       They carry client secrets: hand them to billflow's
                       tenant set-up, never to a log.
  DIR/nwcwallet.env    NWC_* variables (below), to source
Once listening it prints, on stdout, only non-secret variables:
  NWC_WALLET_PUBKEY  NWC_RELAYS  NWC_URL_FILE  (and NWC_ADMIN_URL with --admin-addr)

What a restart keeps: the key, the authorised clients and the minted URLs
(above). What it loses: the balance (reset to --balance-msat), the log of
payments made, and the set of request ids already handled (a request the
relay delivers again after a restart is handled again; the node refuses to
settle an invoice twice, so nothing is paid twice).

Fault switches, for tests (the wallet is one wallet: they apply to every
client): --reply-delay D holds every answer back D after the work is done
(a payment is made, its answer comes late or, past the client's timeout,
never); --silent leaves every request unanswered and undone. With
--admin-addr (loopback only, no authentication) they change at run time:
  GET  /_sandbox/faults   the switches
  POST /_sandbox/faults   {"reply_delay":"25s","silent":false,"drop_next":2,
                           "balance_msat":N}   (balance_msat sets the balance)
  POST /_sandbox/reset    everything off

The node is found through --lnnode-dir (its lnnode.env) or the LNNODE_*
environment variables (LNNODE_PAY_URL for paying; LNNODE_GRPC_ADDR,
LNNODE_TLS_CERT, LNNODE_MACAROON and LNNODE_NETWORK for make_invoice).

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "nwcwallet:", err)
		os.Exit(1)
	}
}

type relayList []string

func (r *relayList) String() string     { return strings.Join(*r, ",") }
func (r *relayList) Set(v string) error { *r = append(*r, v); return nil }

// run parses args, serves until ctx ends, then stops the wallet.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("nwcwallet", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	var relays relayList
	fl.Var(&relays, "relay", "ws:// or wss:// relay to listen on (repeatable, required)")
	dir := fl.String("dir", "", "data directory (required)")
	lnDir := fl.String("lnnode-dir", "", "the sandbox node's --dir, to read its lnnode.env")
	payURL := fl.String("pay-url", "", "the node's pay endpoint (default $LNNODE_PAY_URL)")
	balance := fl.Int64("balance-msat", 100_000_000, "starting balance in millisatoshis")
	nip04Only := fl.Bool("nip04-only", false, "speak and advertise NIP-04 only (a legacy wallet)")
	connections := fl.Int("connections", 1, "connection URLs to mint when DIR has none yet")
	verbose := fl.Bool("v", false, "debug logging (metadata only; never keys or payloads)")
	adminAddr := fl.String("admin-addr", "", "loopback address of the fault-switch endpoint (empty: none)")
	replyDelay := fl.Duration("reply-delay", 0, "hold every answer back this long after the work is done")
	silent := fl.Bool("silent", false, "leave every request unanswered and undone")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 || *dir == "" || len(relays) == 0 {
		fl.Usage()
		return errors.New("need --dir, at least one --relay and no arguments")
	}
	if *replyDelay < 0 {
		return fmt.Errorf("--reply-delay %v is negative", *replyDelay)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	env, err := nodeEnv(*lnDir, getenv)
	if err != nil {
		return err
	}
	if *payURL != "" {
		env["LNNODE_PAY_URL"] = *payURL
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	sk, err := loadOrCreateKey(filepath.Join(*dir, keyFile))
	if err != nil {
		return err
	}
	clients, err := readLines(filepath.Join(*dir, clientsFile))
	if err != nil {
		return err
	}

	opts := nwcwallet.Options{
		Relays:            relays,
		SecretKey:         sk,
		BalanceMsat:       *balance,
		AuthorizedClients: clients,
		Logger:            log,
	}
	if *nip04Only {
		opts.Encryptions = []nwc.Encryption{nwc.EncryptionNIP04}
	}
	if u := env["LNNODE_PAY_URL"]; u != "" {
		opts.Payer = nwcwallet.HTTPPayer{URL: u}
	} else {
		log.Warn("no pay endpoint (LNNODE_PAY_URL): pay_invoice is not offered")
	}
	if net, ok := networkParams(env["LNNODE_NETWORK"]); ok {
		opts.Network = net
	}
	if env["LNNODE_GRPC_ADDR"] != "" && env["LNNODE_TLS_CERT"] != "" && env["LNNODE_MACAROON"] != "" {
		lnd, err := lightning.New(lightning.Config{
			Address: env["LNNODE_GRPC_ADDR"], TLSCertPath: env["LNNODE_TLS_CERT"],
			MacaroonPath: env["LNNODE_MACAROON"], Network: opts.Network,
		})
		if err != nil {
			return err
		}
		defer func() { _ = lnd.Close() }()
		opts.Invoices = lnd
	} else {
		log.Warn("no node gRPC coordinates (LNNODE_GRPC_ADDR, LNNODE_TLS_CERT, LNNODE_MACAROON): make_invoice is not offered")
	}

	w, err := nwcwallet.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	w.SetReplyDelay(*replyDelay)
	w.SetSilent(*silent)

	urlPath := filepath.Join(*dir, urlFile)
	if _, err := os.Stat(urlPath); errors.Is(err, fs.ErrNotExist) {
		if err := mint(w, *connections, urlPath, filepath.Join(*dir, clientsFile)); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}

	vars := []string{
		"NWC_WALLET_PUBKEY=" + w.PubKey(),
		"NWC_RELAYS=" + strings.Join(relays, ","),
		"NWC_URL_FILE=" + urlPath,
	}
	if *adminAddr != "" {
		adminURL, err := serveAdmin(ctx, *adminAddr, newAdmin(w, *replyDelay, *silent))
		if err != nil {
			return err
		}
		vars = append(vars, "NWC_ADMIN_URL="+adminURL)
	}
	text := strings.Join(vars, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(*dir, envFile), []byte(text), 0o600); err != nil {
		return err
	}
	fmt.Fprint(stdout, text)

	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// mint creates n connection URLs, appending them to urlPath (0600) and
// their client keys to clientsPath.
func mint(w *nwcwallet.Wallet, n int, urlPath, clientsPath string) error {
	if n < 1 {
		n = 1
	}
	var urls, keys []string
	for range n {
		c, err := w.NewConnection()
		if err != nil {
			return err
		}
		urls = append(urls, c.SecretURL())
		keys = append(keys, c.ClientPubKey())
	}
	if err := os.WriteFile(urlPath, []byte(strings.Join(urls, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(clientsPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(strings.Join(keys, "\n") + "\n"); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// loadOrCreateKey keeps the wallet's identity stable across restarts, so
// connection URLs minted earlier keep working.
func loadOrCreateKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		sk := strings.TrimSpace(string(b))
		if !nostr.IsValid32ByteHex(sk) {
			return "", fmt.Errorf("%s does not hold a 64-character hex key", path)
		}
		return sk, nil
	case errors.Is(err, fs.ErrNotExist):
		sk := nostr.GeneratePrivateKey()
		if sk == "" {
			return "", errors.New("could not generate a key")
		}
		return sk, os.WriteFile(path, []byte(sk+"\n"), 0o600)
	default:
		return "", err
	}
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// nodeEnv gathers the LNNODE_* variables: from DIR/lnnode.env when given,
// else from the environment.
func nodeEnv(dir string, getenv func(string) string) (map[string]string, error) {
	keys := []string{"LNNODE_PAY_URL", "LNNODE_GRPC_ADDR", "LNNODE_TLS_CERT", "LNNODE_MACAROON", "LNNODE_NETWORK"}
	env := map[string]string{}
	if dir == "" {
		for _, k := range keys {
			env[k] = getenv(k)
		}
		return env, nil
	}
	lines, err := readLines(filepath.Join(dir, lnnodeEnv))
	if err != nil {
		return nil, err
	}
	if lines == nil {
		return nil, fmt.Errorf("%s not found: start `lnnode serve --dir %s` first", filepath.Join(dir, lnnodeEnv), dir)
	}
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

func networkParams(name string) (*chaincfg.Params, bool) {
	for _, p := range []*chaincfg.Params{&chaincfg.RegressionNetParams, &chaincfg.SimNetParams, &chaincfg.SigNetParams, &chaincfg.TestNet3Params, &chaincfg.MainNetParams} {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}
