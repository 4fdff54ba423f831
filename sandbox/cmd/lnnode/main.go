// Command lnnode runs billflow's sandbox Lightning node: lnd's invoice gRPC
// API over TLS with macaroons, for dev mode and tests. See the usage text.
package main

import (
	"bufio"
	"context"
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
ListInvoices, SubscribeInvoices, GetInfo) over TLS with lnd-format macaroons,
issuing real BOLT11 invoices signed by its own key. It has no channels: an
invoice is paid by hand (below) or by the sandbox NWC wallet.

Usage:
  lnnode serve --dir DIR [--grpc-addr ADDR] [--http-addr ADDR] [--network NET]
  lnnode pay   (--dir DIR | --url URL) BOLT11

serve   runs the node until SIGINT or SIGTERM. DIR keeps the node's identity
        and invoices across restarts, and receives what a client needs:
          DIR/tls.cert            the self-signed TLS certificate
          DIR/invoice.macaroon    an invoice macaroon, hex text
          DIR/readonly.macaroon   a read-only macaroon, hex text
          DIR/lnnode.env          LNNODE_* variables (below), to source
        It prints the same variables on stdout once it serves:
          LNNODE_GRPC_ADDR  LNNODE_TLS_CERT  LNNODE_MACAROON
          LNNODE_PAY_URL    LNNODE_NETWORK   LNNODE_PUBKEY

pay     settles an invoice this node issued, as if it had been paid, and
        prints the payment hash and preimage. It posts to the node's pay
        endpoint, found in DIR/lnnode.env or given with --url. The same by
        hand:
          curl -d "$BOLT11" "$LNNODE_PAY_URL"
        Exit status 1 if the node refuses (unknown, already paid, expired).

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

	payURL := ""
	var srv *http.Server
	httpDone := make(chan error, 1)
	if httpAddr != "" {
		lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("pay endpoint: %w", err)
		}
		payURL = "http://" + lis.Addr().String() + "/pay"
		srv = &http.Server{Handler: node.PayHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { httpDone <- srv.Serve(lis) }()
	}

	vars := []string{
		"LNNODE_GRPC_ADDR=" + node.Addr(),
		"LNNODE_TLS_CERT=" + node.TLSCertPath(),
		"LNNODE_MACAROON=" + node.MacaroonPath(),
		"LNNODE_PAY_URL=" + payURL,
		"LNNODE_NETWORK=" + params.Name,
		"LNNODE_PUBKEY=" + node.PubKey(),
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, payURL, strings.NewReader(bolt11))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node refused (%s): %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
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
