package nwcwallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// HTTPPayer pays through the sandbox Lightning node's pay endpoint (POST
// with the BOLT11 string as the body, as `lnnode serve` offers at
// LNNODE_PAY_URL), for a wallet running in a process of its own.
type HTTPPayer struct {
	// URL is the pay endpoint.
	URL string
	// Client sends the request; http.DefaultClient when nil. The call is
	// bounded by the ctx given to Pay.
	Client *http.Client
}

var _ Payer = HTTPPayer{}

// maxPayReply bounds the endpoint's answer.
const maxPayReply = 64 << 10

// Pay implements Payer.
func (p HTTPPayer) Pay(ctx context.Context, bolt11 string) (string, error) {
	if p.URL == "" {
		return "", errors.New("nwcwallet: HTTPPayer has no URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, strings.NewReader(bolt11))
	if err != nil {
		return "", fmt.Errorf("nwcwallet: pay request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain")
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("nwcwallet: pay endpoint: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPayReply))
	if err != nil {
		return "", fmt.Errorf("nwcwallet: reading the pay endpoint's answer: %w", err)
	}
	var out struct {
		Preimage string `json:"preimage"`
		Error    string `json:"error"`
	}
	jerr := json.Unmarshal(body, &out)
	if resp.StatusCode != http.StatusOK {
		msg := out.Error
		if jerr != nil || msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return "", fmt.Errorf("nwcwallet: pay endpoint refused (HTTP %d): %s", resp.StatusCode, msg)
	}
	if jerr != nil || out.Preimage == "" {
		return "", errors.New("nwcwallet: pay endpoint answered without a preimage")
	}
	return out.Preimage, nil
}
