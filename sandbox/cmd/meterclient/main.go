// Command meterclient runs billflow's sandbox metered client
// (sandbox/meterclient) until SIGINT or SIGTERM: a payer that receives
// billflow's outbound events as a webhook endpoint and co-signs its usage
// receipts through the api. See the usage text.
package main

import (
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
	"strings"
	"syscall"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/billflow/billflow/sandbox/meterclient"
)

// Files kept in --dir.
const (
	keyFile = "payer.key"       // the payer's secret key, hex (0600)
	envFile = "meterclient.env" // METERCLIENT_* variables, as printed on stdout
)

const usage = `meterclient: billflow's sandbox metered client (the payer of usage sessions).

It serves billflow's outbound events as the application's webhook endpoint
(point BILLFLOW_WEBHOOK_URL at METERCLIENT_URL), verifies each delivery with
BILLFLOW_WEBHOOK_SECRET, and answers every usage.sign_request for its payer
key by co-signing the receipt and posting it to the api's
POST /v1/usage/sessions/{id}/signatures (BILLFLOW_API_URL, BILLFLOW_API_TOKEN).
GET /outcomes lists what became of each sign request (JSON).

Usage:
  meterclient --dir DIR [--addr HOST:PORT] [--api-url URL]
              [--mode auto|late|never|wrong-key] [--delay 30s] [-v]

Modes: auto signs at once; late signs after --delay (past the engine's sign
timeout, a re-send arrives first); never receives and ignores; wrong-key
signs with another key (the engine answers RECEIPT_WRONG_PKEY_HASH).

DIR keeps the payer's identity across restarts:
  DIR/payer.key        the payer's secret key (hex, 0600), made on first start
  DIR/meterclient.env  METERCLIENT_* variables (below), to source
Once listening it prints, on stdout, only non-secret variables:
  METERCLIENT_URL  METERCLIENT_PUBKEY  METERCLIENT_NPUB

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "meterclient:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx ends, then stops.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("meterclient", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	dir := fl.String("dir", "", "data directory (required)")
	addr := fl.String("addr", "127.0.0.1:7480", "listen address (host:port; port 0 picks a free one)")
	apiURL := fl.String("api-url", getenv("BILLFLOW_API_URL"), "billflow's api (default $BILLFLOW_API_URL)")
	modeName := fl.String("mode", "auto", "auto, late, never or wrong-key")
	delay := fl.Duration("delay", 30*time.Second, "how long mode late waits before signing")
	verbose := fl.Bool("v", false, "debug logging")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 || *dir == "" {
		fl.Usage()
		return errors.New("need --dir and no arguments")
	}
	mode, err := meterclient.ParseMode(*modeName)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sk, err := loadKey(*dir)
	if err != nil {
		return err
	}
	c, err := meterclient.New(meterclient.Options{SecretKey: sk, APIURL: *apiURL, APIToken: getenv("BILLFLOW_API_TOKEN"),
		WebhookSecret: []byte(getenv("BILLFLOW_WEBHOOK_SECRET")), Mode: mode, Delay: *delay, Logger: log})
	if err != nil {
		return err
	}
	defer c.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /outcomes", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Outcomes())
	})
	mux.Handle("/", c)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	npub, err := nip19.EncodePublicKey(c.PublicKey())
	if err != nil {
		return err
	}
	vars := fmt.Sprintf("METERCLIENT_URL=http://%s/\nMETERCLIENT_PUBKEY=%s\nMETERCLIENT_NPUB=%s\n", ln.Addr(), c.PublicKey(), npub)
	if err := os.WriteFile(filepath.Join(*dir, envFile), []byte(vars), 0o600); err != nil {
		return err
	}
	fmt.Fprint(stdout, vars)
	log.Info("meterclient listening", "addr", ln.Addr().String(), "mode", mode, "payer", c.PublicKey())

	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// loadKey reads DIR/payer.key, making a key on first start.
func loadKey(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, keyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		sk := nostr.GeneratePrivateKey()
		return sk, os.WriteFile(path, []byte(sk+"\n"), 0o600)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
