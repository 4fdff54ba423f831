package outbound

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var secret = []byte("whsec_test_secret")

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"invoice.paid"}`)
	h := Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") {
		t.Fatalf("header %q", h)
	}
	if err := Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		"other body":     {h, []byte(`{"type":"invoice.void"}`), now, ErrBadSignature},
		"other secret":   {Sign([]byte("x"), now, body), body, now, ErrBadSignature},
		"too old":        {h, body, now.Add(10 * time.Minute), ErrStale},
		"from future":    {h, body, now.Add(-10 * time.Minute), ErrStale},
		"no v1":          {"t=1800000000", body, now, ErrMalformedSignature},
		"garbage":        {"hello", body, now, ErrMalformedSignature},
		"bad hex":        {"t=1800000000,v1=zz", body, now, ErrMalformedSignature},
		"rotated secret": {h + ",v1=" + strings.Repeat("00", 32), body, now, nil},
	} {
		if err := Verify(secret, tc.header, tc.body, tc.now, 5*time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func TestDeliverSignsAndReportsFailures(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if err := Verify(secret, r.Header.Get(HeaderSignature), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Header.Get(HeaderEventID) != "ev-1" || r.Header.Get(HeaderEventType) != "invoice.paid" {
			http.Error(w, "headers", http.StatusBadRequest)
			return
		}
		if fail.Load() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := &Sender{URL: srv.URL, Secret: secret}
	ev := Event{ID: "ev-1", Type: "invoice.paid", Body: []byte(`{"id":"ev-1"}`)}
	if err := s.Deliver(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	var de *DeliveryError
	if err := s.Deliver(context.Background(), ev); !errors.As(err, &de) || de.Status != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want a 503 DeliveryError", err)
	}
	wrong := &Sender{URL: srv.URL, Secret: []byte("other")}
	if err := wrong.Deliver(context.Background(), ev); !errors.As(err, &de) || de.Status != http.StatusUnauthorized {
		t.Fatalf("got %v, want the receiver to refuse a bad signature", err)
	}
	srv.Close()
	if err := s.Deliver(context.Background(), ev); !errors.As(err, &de) || de.Status != 0 {
		t.Fatalf("got %v, want a transport DeliveryError", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("receiver saw %d calls, want 3", calls.Load())
	}
}
