// Command lnnode runs billflow's sandbox Lightning node: lnd's invoice gRPC
// API over TLS with macaroons, for dev mode and tests. See the usage text.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/btcsuite/btcd/chaincfg"
)

// envFile is written into --dir at start: the node's coordinates as
// KEY=VALUE lines, for scripts (source it) and for `lnnode pay --dir`.
const envFile = "lnnode.env"

const usage = `lnnode: billflow's sandbox Lightning node.

It serves the part of lnd's gRPC API billflow uses (AddInvoice, LookupInvoice,
ListInvoices, SubscribeInvoices, GetInfo; routerrpc SendPaymentV2 and
TrackPaymentV2) over TLS with lnd-format macaroons, issuing real BOLT11
invoices signed by its own key. It has no channels: an invoice is paid by hand
(below) or by the sandbox NWC wallet. Outgoing, it reaches one remote payee
(its own key), whose invoices payee-invoice makes: the engine's withdrawals
pay those; any other destination fails with FAILURE_REASON_NO_ROUTE.

Usage:
  lnnode serve --dir DIR [--grpc-addr ADDR] [--http-addr ADDR] [--network NET]
  lnnode pay   (--dir DIR | --url URL) BOLT11
  lnnode payee-invoice (--dir DIR | --url URL) [--memo TEXT] [--expiry DUR] AMOUNT_MSAT

serve   runs the node until SIGINT or SIGTERM. DIR keeps the node's identity
        and invoices across restarts, and receives what a client needs:
          DIR/tls.cert            the self-signed TLS certificate
          DIR/invoice.macaroon    an invoice macaroon, hex text
          DIR/readonly.macaroon   a read-only macaroon, hex text
          DIR/payout.macaroon     offchain read+write, info read (payouts), hex
          DIR/lnnode.env          LNNODE_* variables (below), to source
        It prints the same variables on stdout once it serves:
          LNNODE_GRPC_ADDR  LNNODE_TLS_CERT  LNNODE_MACAROON  LNNODE_PAYOUT_MACAROON
          LNNODE_PAY_URL    LNNODE_PAYEE_URL LNNODE_NETWORK   LNNODE_PUBKEY
          LNNODE_PAYEE_PUBKEY

pay     settles an invoice this node issued, as if it had been paid, and
        prints the payment hash and preimage. It posts to the node's pay
        endpoint, found in DIR/lnnode.env or given with --url. The same by
        hand:
          curl -d "$BOLT11" "$LNNODE_PAY_URL"
        Exit status 1 if the node refuses (unknown, already paid, expired).

payee-invoice  makes an invoice of the remote payee (a withdrawal's
        destination) and prints {"payment_request","payment_hash"}. It posts
        to LNNODE_PAYEE_URL (from DIR/lnnode.env, or --url). By hand:
          curl -d '{"amount_msat":50000}' "$LNNODE_PAYEE_URL"
          curl "$LNNODE_PAYEE_URL/$PAYMENT_HASH"     # settled?

Flags:
`

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "lnnode:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("lnnode "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	dir := fs.String("dir", "", "data directory (required for serve; for pay, where lnnode.env is)")
	switch cmd {
	case "serve":
		grpcAddr := fs.String("grpc-addr", "127.0.0.1:0", "gRPC listen address (port 0: any free port)")
		httpAddr := fs.String("http-addr", "127.0.0.1:0", `listen address of the unauthenticated pay endpoint ("" disables it)`)
		network := fs.String("network", "regtest", "chain of the invoices: regtest or simnet")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *dir == "" || fs.NArg() != 0 {
			fs.Usage()
			return errors.New("serve needs --dir and no arguments")
		}
		params, err := networkParams(*network)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serve(ctx, *dir, *grpcAddr, *httpAddr, params, stdout, stderr)
	case "pay":
		payURL := fs.String("url", "", "the node's pay endpoint (LNNODE_PAY_URL)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 1 || (*dir == "") == (*payURL == "") {
			fs.Usage()
			return errors.New("pay needs one BOLT11 argument and one of --dir and --url")
		}
		if *payURL == "" {
			u, err := readEnv(filepath.Join(*dir, envFile), "LNNODE_PAY_URL")
			if err != nil {
				return err
			}
			*payURL = u
		}
		return pay(ctx, *payURL, fs.Arg(0), stdout)
	case "payee-invoice":
		payeeURL := fs.String("url", "", "the node's payee endpoint (LNNODE_PAYEE_URL)")
		memo := fs.String("memo", "", "the invoice's description")
		expiry := fs.Duration("expiry", time.Hour, "how long the invoice is payable (whole seconds)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 1 || (*dir == "") == (*payeeURL == "") {
			fs.Usage()
			return errors.New("payee-invoice needs one AMOUNT_MSAT argument and one of --dir and --url")
		}
		amount, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || amount <= 0 {
			return fmt.Errorf("AMOUNT_MSAT %q is not a positive whole number of millisatoshis", fs.Arg(0))
		}
		if *expiry <= 0 || *expiry%time.Second != 0 {
			return fmt.Errorf("--expiry %s is not a positive whole number of seconds", *expiry)
		}
		if *payeeURL == "" {
			u, err := readEnv(filepath.Join(*dir, envFile), "LNNODE_PAYEE_URL")
			if err != nil {
				return err
			}
			*payeeURL = u
		}
		body, err := json.Marshal(lnnode.PayeeInvoiceRequest{AmountMsat: amount, Memo: *memo, ExpirySeconds: int64(*expiry / time.Second)})
		if err != nil {
			return err
		}
		return post(ctx, *payeeURL, "application/json", string(body), stdout)
	case "help", "-h", "--help":
		fs.Usage()
		return nil
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func networkParams(name string) (*chaincfg.Params, error) {
	switch name {
	case "regtest":
		return &chaincfg.RegressionNetParams, nil
	case "simnet":
		return &chaincfg.SimNetParams, nil
	default:
		return nil, fmt.Errorf("--network %q: want regtest or simnet (the sandbox never issues real-money invoices)", name)
	}
}

func serve(ctx context.Context, dir, grpcAddr, httpAddr string, params *chaincfg.Params, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	node, err := lnnode.Start(ctx, lnnode.Options{Network: params, ListenAddr: grpcAddr, DataDir: dir, Logger: log})
	if err != nil {
		return err
	}
	defer node.Close()

	payURL, payeeURL := "", ""
	var srv *http.Server
	httpDone := make(chan error, 1)
	if httpAddr != "" {
		lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("pay endpoint: %w", err)
		}
		payURL = "http://" + lis.Addr().String() + "/pay"
		payeeURL = "http://" + lis.Addr().String() + "/payee/invoices"
		srv = &http.Server{Handler: node.PayHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { httpDone <- srv.Serve(lis) }()
	}

	vars := []string{
		"LNNODE_GRPC_ADDR=" + node.Addr(),
		"LNNODE_TLS_CERT=" + node.TLSCertPath(),
		"LNNODE_MACAROON=" + node.MacaroonPath(),
		"LNNODE_PAYOUT_MACAROON=" + node.PayoutMacaroonPath(),
		"LNNODE_PAY_URL=" + payURL,
		"LNNODE_PAYEE_URL=" + payeeURL,
		"LNNODE_NETWORK=" + params.Name,
		"LNNODE_PUBKEY=" + node.PubKey(),
		"LNNODE_PAYEE_PUBKEY=" + node.PayeePubKey(),
	}
	text := strings.Join(vars, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, envFile), []byte(text), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", envFile, err)
	}
	fmt.Fprint(stdout, text)

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		return fmt.Errorf("pay endpoint stopped: %w", err)
	}
	log.Info("shutting down")
	if srv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("pay endpoint shutdown", "err", err)
		}
	}
	return nil
}

func pay(ctx context.Context, payURL, bolt11 string, stdout io.Writer) error {
	return post(ctx, payURL, "text/plain", bolt11, stdout)
}

// post sends body to url and copies a 200 reply to stdout.
func post(ctx context.Context, url, contentType, body string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node refused (%s): %s", resp.Status, strings.TrimSpace(string(reply)))
	}
	_, err = stdout.Write(reply)
	return err
}

// readEnv returns KEY's value from a KEY=VALUE file.
func readEnv(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w (is `lnnode serve --dir` running there?)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			if v == "" {
				return "", fmt.Errorf("%s is empty in %s: the node runs without its pay endpoint", key, path)
			}
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s not found in %s", key, path)
}
