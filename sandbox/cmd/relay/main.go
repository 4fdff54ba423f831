// Command relay runs billflow's sandbox Nostr relay (sandbox/relay) until
// SIGINT or SIGTERM, printing its ws:// URL on stdout so scripts can read it:
//
//	go run ./sandbox/cmd/relay --addr 127.0.0.1:7447
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/billflow/billflow/sandbox/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx ends, then shuts the relay down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7447", "listen address (host:port; port 0 picks a free one)")
	maxEvents := fs.Int("max-events", 0, "stored events cap, oldest evicted first (0: default 100000)")
	verbose := fs.Bool("v", false, "log connections to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	r := relay.New(relay.Options{
		MaxEvents: *maxEvents,
		Logger:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})
	url, err := r.Start(ctx, *addr)
	if err != nil {
		return err
	}
	// The URL alone on stdout: scripts read this line.
	fmt.Fprintln(stdout, url)
	<-ctx.Done()
	r.Close()
	return nil
}
