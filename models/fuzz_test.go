package models_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/models"
)

// fuzzPreviewBase is the instant the fuzzer's --at offsets count from; the
// offset is bounded to ±50 years so one input cannot ask for millions of
// renewals (a preview's cost grows with the periods it crosses).
var fuzzPreviewBase = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

const fuzzPreviewSpan = 50 * 366 * 24 * 3600

// FuzzPreview feeds the preview input file (`starter preview --input`)
// through ParsePreviewInput and Preview and holds them to what the CLI
// promises: every refusal is a *ValidationError naming a field; an accepted
// file survives encode -> parse unchanged; an accepted preview's total is
// the checked sum of its items, every renewal is the price of a plan of the
// file's catalog, no amount exceeds a plan's limit, and the result is the
// same when computed twice and when read back from its JSON.
//
// Seeds: every golden input in testdata/preview at its golden instant, and
// the hand-made files in testdata/fuzz/FuzzPreview.
func FuzzPreview(f *testing.F) {
	for _, c := range previewCases {
		data, err := os.ReadFile(filepath.Join(previewDir, c.name+".input.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, ts(c.at).Unix()-fuzzPreviewBase.Unix())
	}
	f.Add([]byte(`{"plans":[],"activities":[]}`), int64(0))
	f.Add([]byte(`{"plans":[{"id":"p","name":"P","amount":1000000000000,"currency":"usd"}],"activities":[`+
		`{"id":"a","type":"resource_created","resource_id":"r","plan_id":"p","created_at":"2026-01-31T23:59:59.999+14:00"}]}`), int64(86400*400))

	f.Fuzz(func(t *testing.T, data []byte, atOffset int64) {
		in, err := models.ParsePreviewInput(data)
		if err != nil {
			requireNamedField(t, err)
			return
		}

		// Round trip: what the parser accepted encodes to a file it accepts
		// again as the same input.
		enc, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("accepted input does not encode: %v", err)
		}
		back, err := models.ParsePreviewInput(enc)
		if err != nil {
			t.Fatalf("accepted input, re-encoded, is refused: %v\n%s", err, enc)
		}
		if enc2, _ := json.Marshal(back); !bytes.Equal(enc, enc2) {
			t.Fatalf("parse -> encode -> parse changed the input:\n%s\n%s", enc, enc2)
		}

		at := fuzzPreviewBase.Add(time.Duration(atOffset%fuzzPreviewSpan) * time.Second)
		res, err := models.Preview(in, at)
		if err != nil {
			requireNamedField(t, err)
			return
		}
		prices := map[string]int64{}
		for _, p := range in.Plans {
			prices[p.ID] = p.Amount
		}
		var sum int64
		for i, it := range res.Items {
			price, ok := prices[it.PlanID]
			switch {
			case !ok:
				t.Fatalf("item %d bills plan %q, not in the file's catalog", i, it.PlanID)
			case it.Amount > models.MaxPlanAmount || it.Amount < -models.MaxPlanAmount:
				t.Fatalf("item %d amount %d beyond a plan's limit", i, it.Amount)
			case it.Kind == models.KindRenewal && it.Amount != price:
				t.Fatalf("renewal %d of plan %q is %d, the plan costs %d", i, it.PlanID, it.Amount, price)
			case it.Kind == models.KindRenewal && it.Amount < 0:
				t.Fatalf("renewal %d is negative: %d", i, it.Amount)
			case it.Kind != models.KindRenewal && it.Kind != models.KindProration:
				t.Fatalf("item %d has kind %q", i, it.Kind)
			case it.CreatedAt.After(res.At):
				t.Fatalf("item %d at %s is after the preview instant %s", i, it.CreatedAt, res.At)
			}
			sum += it.Amount // cannot overflow: at most len(items) * 10^12
		}
		if sum != res.Total {
			t.Fatalf("total %d, items sum to %d", res.Total, sum)
		}
		if res.PeriodStart != nil && (res.PeriodStart.After(res.At) || !res.PeriodEnd.After(res.At)) {
			t.Fatalf("period %s..%s does not hold the preview instant %s", res.PeriodStart, res.PeriodEnd, res.At)
		}

		again, err := models.Preview(in, at)
		if err != nil || !reflect.DeepEqual(res, again) {
			t.Fatalf("the same preview twice differs: %v", err)
		}
		if got := roundTrip(t, res); !reflect.DeepEqual(got, roundTrip(t, got)) {
			t.Fatalf("the result's JSON does not read back as itself")
		}
	})
}

// requireNamedField fails unless err is a *models.ValidationError that
// names what was wrong, as every bad input must be.
func requireNamedField(t *testing.T, err error) {
	t.Helper()
	var ve *models.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("refusal is a %T, not a *ValidationError: %v", err, err)
	}
	if strings.TrimSpace(ve.Field) == "" || strings.TrimSpace(ve.Reason) == "" {
		t.Fatalf("refusal names no field or no reason: %q", err)
	}
}
