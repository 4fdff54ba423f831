// Package testkit gives integration tests real dependencies: a throwaway
// Postgres database per test and a client of the Temporal dev server that
// scripts/test.sh starts. Nothing here is used outside tests.
package testkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/payloadcodec"
	"github.com/billflow/billflow/store"
)

// init gives the test process (and the worker, api and starter processes
// it starts, which inherit its environment) one payload key, so the
// integration tier runs with payloads encrypted, as every deployment does.
// A BILLFLOW_PAYLOAD_KEYS already set wins. Recording replay fixtures
// (BILLFLOW_RECORD_HISTORIES) stores payloads in plaintext instead: a
// fixture must replay without a key that died with the test process.
func init() {
	if _, set := os.LookupEnv(payloadcodec.EnvKeys); set {
		return
	}
	v := payloadcodec.NewKey("test-" + time.Now().UTC().Format("20060102T150405"))
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		v = payloadcodec.Plaintext
	}
	_ = os.Setenv(payloadcodec.EnvKeys, v)
}

// PayloadCodec is the test process's codec (nil when payloads are plaintext),
// for tests that read raw histories (GetWorkflowHistory returns payloads as
// stored): DecodeMessage decrypts an event, DataConverter reads a payload.
func PayloadCodec(t testing.TB) *payloadcodec.Codec {
	t.Helper()
	c, err := payloadcodec.FromEnv(os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Decode decrypts, in place, every payload of msg (a history event read
// with GetWorkflowHistory, which returns payloads as stored).
func Decode(t testing.TB, msg proto.Message) {
	t.Helper()
	if c := PayloadCodec(t); c != nil {
		if err := c.DecodeMessage(context.Background(), msg); err != nil {
			t.Fatalf("decode payloads: %v", err)
		}
	}
}

// DataConverter reads payloads of raw histories the way the test's clients
// wrote them.
func DataConverter(t testing.TB) converter.DataConverter {
	t.Helper()
	if c := PayloadCodec(t); c != nil {
		return c.DataConverter(nil)
	}
	return converter.GetDefaultDataConverter()
}

// AdminURL returns the admin database URL the test command exports, failing
// the test with directions when it is missing.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("BILLFLOW_TEST_DATABASE_URL")
	if u == "" {
		t.Fatal("BILLFLOW_TEST_DATABASE_URL is not set: run integration tests through `bash scripts/test.sh`, which starts Postgres and Temporal")
	}
	return u
}

// NewDatabase creates an empty database, migrated, and returns its URL. The
// database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := AdminURL(t)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to test postgres: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "billflow_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse admin url: %v", err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return dbURL
}

// Plans is the catalog integration tests bill against.
var Plans = []models.Plan{
	{ID: "free", Name: "Free", Amount: 0, Currency: "usd"},
	{ID: "basic", Name: "Basic", Amount: 500, Currency: "usd"},
	{ID: "pro", Name: "Pro", Amount: 2000, Currency: "usd"},
	{ID: "euro", Name: "Euro", Amount: 900, Currency: "eur"},
}

// NewStore returns a store on a fresh, migrated database holding Plans.
func NewStore(t testing.TB) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, NewDatabase(t))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	if err := st.UpsertPlans(ctx, Plans); err != nil {
		t.Fatalf("load plans: %v", err)
	}
	return st
}

// TemporalClient dials the dev server the test command started, encrypting
// payloads with the test process's key (see init).
func TemporalClient(t testing.TB) client.Client {
	t.Helper()
	addr := os.Getenv("TEMPORAL_ADDRESS")
	if addr == "" {
		t.Fatal("TEMPORAL_ADDRESS is not set: run integration tests through `bash scripts/test.sh`")
	}
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	opts := client.Options{HostPort: addr, Namespace: ns}
	if _, err := payloadcodec.Configure(&opts, os.Environ()); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(opts)
	if err != nil {
		t.Fatalf("dial temporal %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

// NewTenantID returns a random valid tenant id (a Nostr public key).
func NewTenantID(t testing.TB) models.TenantID {
	t.Helper()
	for {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		id, err := models.ParseTenantID(hex.EncodeToString(b))
		if err == nil {
			return id
		}
	}
}

// TaskQueue returns a task queue name unique to the test, so tests sharing
// one dev server never pick up each other's tasks.
func TaskQueue(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("test-%s-%s", t.Name(), hex.EncodeToString(b))
}

// SyncBuffer collects output written from several goroutines (a process's
// stdout and stderr, a logger) while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
