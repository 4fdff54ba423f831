package nwc_test

import (
	"fmt"

	"github.com/billflow/billflow/rails/nwc"
)

func ExampleParseURL() {
	conn, err := nwc.ParseURL("nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss%3A%2F%2Frelay.damus.io&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c")
	if err != nil {
		fmt.Println(err)
		return
	}
	// Printing never shows the secret; SecretURL is for encrypted storage.
	fmt.Println(conn)
	fmt.Println(conn.Relays)

	_, err = nwc.ParseURL("nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss%3A%2F%2Frelay.damus.io&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c00")
	fmt.Println(err)
	// Output:
	// nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss%3A%2F%2Frelay.damus.io&secret=REDACTED
	// [wss://relay.damus.io]
	// nwc: invalid connection URL: secret: must be 64 hex characters (a 32-byte private key)
}
