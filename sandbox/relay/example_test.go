package relay_test

import (
	"context"
	"fmt"
	"time"

	"github.com/billflow/billflow/sandbox/relay"
	"github.com/nbd-wtf/go-nostr"
)

// A relay on a free loopback port, used through go-nostr's client. Close the
// clients before the relay.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r, url, err := relay.Start(ctx, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer r.Close()

	c, err := relay.Dial(ctx, url)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ev := nostr.Event{Kind: nostr.KindTextNote, CreatedAt: nostr.Now(), Tags: nostr.Tags{}, Content: "hello"}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		panic(err)
	}
	if err := c.Publish(ctx, ev); err != nil {
		panic(err)
	}
	got, err := c.Fetch(ctx, nostr.Filter{Kinds: []int{nostr.KindTextNote}})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(got), got[0].Content)
	// Output: 1 hello
}
