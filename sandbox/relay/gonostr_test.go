package relay

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
)

// TestGoNostrClient drives the relay with go-nostr's client in-process:
// publish, duplicate, rejection, stored query, live subscription, COUNT.
func TestGoNostrClient(t *testing.T) {
	_, url := startRelay(t, Options{})
	pub, sub := dial(t, url), dial(t, url)
	ctx := testCtx(t)
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)

	first := signed(t, sk, nostr.KindTextNote, nostr.Now(), nil, "first")
	require.NoError(t, pub.Publish(ctx, first))
	require.NoError(t, pub.Publish(ctx, first), "a duplicate is OK true per NIP-01")

	forged := first
	forged.Content = "tampered"
	err = pub.Publish(ctx, forged)
	require.Error(t, err)
	require.Contains(t, err.Error(), "invalid:")

	got, err := sub.Fetch(ctx, nostr.Filter{Authors: []string{pk}})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, first.ID, got[0].ID)
	require.Equal(t, first.Content, got[0].Content)
	ok, err := got[0].CheckSignature()
	require.NoError(t, err)
	require.True(t, ok)

	live, err := sub.Subscribe(ctx, nostr.Filters{{Kinds: []int{nostr.KindTextNote}, Authors: []string{pk}}})
	require.NoError(t, err)
	select {
	case ev := <-live.Events:
		require.Equal(t, first.ID, ev.ID)
	case <-ctx.Done():
		t.Fatal("stored event not delivered")
	}
	select {
	case <-live.EndOfStoredEvents:
	case <-ctx.Done():
		t.Fatal("no EOSE")
	}

	second := signed(t, sk, nostr.KindTextNote, nostr.Now(), nostr.Tags{{"t", "billflow"}}, "second")
	require.NoError(t, pub.Publish(ctx, second))
	select {
	case ev := <-live.Events:
		require.Equal(t, second.ID, ev.ID)
	case <-ctx.Done():
		t.Fatal("live event not delivered")
	}

	sub.Unsub(live)
	got, err = sub.Fetch(ctx, nostr.Filter{Authors: []string{pk}})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{first.ID, second.ID}, ids(got))
}

// childURLEnv carries the relay URL to the child process of
// TestGoNostrClientUnchanged.
const childURLEnv = "BILLFLOW_RELAY_TEST_CHILD_URL"

// TestGoNostrClientUnchanged runs go-nostr's client exactly as an application
// would (RelayConnect, Publish, Subscribe, QuerySync, Count) against the
// relay. It
// runs in a child process because, in go-nostr v0.38.2, QuerySync leaves a
// goroutine spinning forever and Relay.Close is a data race: both end with
// the child instead of polluting this test binary.
func TestGoNostrClientUnchanged(t *testing.T) {
	r, url := startRelay(t, Options{})
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGoNostrClientChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childURLEnv+"="+url)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child output:\n%s", out)
	require.Contains(t, string(out), "--- PASS: TestGoNostrClientChild")

	// The child's published event is on the relay.
	evs := r.Query(nostr.Filter{Kinds: []int{nostr.KindTextNote}, Tags: nostr.TagMap{"t": {"child"}}})
	require.Len(t, evs, 2)
}

// TestGoNostrClientChild is the child half of TestGoNostrClientUnchanged; it
// skips unless started by it.
func TestGoNostrClientChild(t *testing.T) {
	url := os.Getenv(childURLEnv)
	if url == "" {
		t.Skip("runs only as TestGoNostrClientUnchanged's child process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	r, err := nostr.RelayConnect(ctx, url)
	require.NoError(t, err)
	// Deliberately never closed: the process exit ends the connection.

	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	older := signed(t, sk, nostr.KindTextNote, nostr.Now()-10, nostr.Tags{{"t", "child"}}, "older")
	newer := signed(t, sk, nostr.KindTextNote, nostr.Now(), nostr.Tags{{"t", "child"}}, "newer")
	require.NoError(t, r.Publish(ctx, older))

	sub, err := r.Subscribe(ctx, nostr.Filters{{Authors: []string{pk}}})
	require.NoError(t, err)
	select {
	case ev := <-sub.Events:
		require.Equal(t, older.ID, ev.ID)
	case <-ctx.Done():
		t.Fatal("stored event not delivered")
	}
	select {
	case <-sub.EndOfStoredEvents:
	case <-ctx.Done():
		t.Fatal("no EOSE")
	}
	require.NoError(t, r.Publish(ctx, newer))
	select {
	case ev := <-sub.Events:
		require.Equal(t, newer.ID, ev.ID)
	case <-ctx.Done():
		t.Fatal("live event not delivered")
	}

	qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
	defer qcancel()
	evs, err := r.QuerySync(qctx, nostr.Filter{Authors: []string{pk}, Limit: 10})
	require.NoError(t, err)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Content)
	}
	// go-nostr delivers events through one goroutine each, so their order is
	// not the relay's: compare as a set.
	require.ElementsMatch(t, []string{"older", "newer"}, got)

	n, err := r.Count(ctx, nostr.Filters{{Authors: []string{pk}}})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	err = r.Publish(ctx, nostr.Event{ID: strings.Repeat("0", 64), PubKey: pk, Sig: strings.Repeat("0", 128), Tags: nostr.Tags{}})
	require.ErrorContains(t, err, "invalid:")
}
