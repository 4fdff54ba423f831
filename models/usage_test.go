package models_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/billflow/billflow/models"
)

func TestUsageValueRoundsHalfAwayFromZero(t *testing.T) {
	for _, c := range []struct{ price, used, units, want int64 }{
		{100, 1, 3, 33},    // 33.33
		{100, 2, 3, 67},    // 66.67
		{1, 1, 2, 1},       // 0.5 rounds up
		{3, 1, 2, 2},       // 1.5
		{1, 1, 3, 0},       // 0.33
		{0, 1000, 60, 0},   // free
		{250, 60, 60, 250}, // a whole unit block
	} {
		got, err := models.UsageValue(c.price, c.used, c.units)
		if err != nil || got != c.want {
			t.Errorf("UsageValue(%d, %d, %d) = %d, %v; want %d", c.price, c.used, c.units, got, err, c.want)
		}
	}
	if _, err := models.UsageValue(math.MaxInt64, math.MaxInt64, 1); err == nil {
		t.Error("an overflowing value is an error")
	}
	if _, err := models.UsageValue(1, 1, 0); err == nil {
		t.Error("units 0 is an error")
	}
	if _, err := models.UsageValue(-1, 1, 1); err == nil {
		t.Error("a negative price is an error")
	}
}

// Deltas of a running total add up to the value of the whole, whatever the
// steps: no drift across receipts.
func TestUsageDeltasDoNotDrift(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		price := rapid.Int64Range(0, 1_000_000).Draw(t, "price")
		units := rapid.Int64Range(1, 1_000_000).Draw(t, "units")
		steps := rapid.SliceOfN(rapid.Int64Range(0, 100_000), 1, 50).Draw(t, "steps")
		var total, sum int64
		for _, s := range steps {
			d, err := models.UsageDelta(price, total, total+s, units)
			if err != nil {
				t.Fatal(err)
			}
			if d < 0 {
				t.Fatalf("negative delta %d", d)
			}
			sum += d
			total += s
		}
		whole, err := models.UsageValue(price, total, units)
		if err != nil || whole != sum {
			t.Fatalf("deltas sum to %d, the whole is %d (%v)", sum, whole, err)
		}
	})
}

func TestServiceValidate(t *testing.T) {
	ok := models.Service{ID: "vpn", Unit: models.UnitSeconds, Price: 100, Units: 60, Chunk: 60, GracePeriod: time.Minute}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]models.Service{
		"bad id":           {ID: "VPN!", Unit: "SEC", Price: 1, Units: 1, Chunk: 1},
		"bad unit":         {ID: "vpn", Unit: "MIN", Price: 1, Units: 1, Chunk: 1},
		"free not allowed": {ID: "vpn", Unit: "SEC", Price: 0, Units: 1, Chunk: 1},
		"units 0":          {ID: "vpn", Unit: "SEC", Price: 1, Units: 0, Chunk: 1},
		"chunk 0":          {ID: "vpn", Unit: "SEC", Price: 1, Units: 1, Chunk: 0},
		"overflow":         {ID: "vpn", Unit: "B", Price: math.MaxInt64, Units: 1, Chunk: 2},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
	if !(models.Service{ID: "free", Unit: "B", Units: 1, Chunk: 1, AllowFree: true}).Free() {
		t.Error("price 0 with allow_free is free")
	}
	for c := range models.UsageErrorMeaning {
		if _, err := models.ParseUsageErrorCode(string(c)); err != nil {
			t.Error(err)
		}
	}
}

func TestParseServiceCatalog(t *testing.T) {
	good := []byte(`{"services": [
		{"id": "vpn", "unit": "sec", "price": 60, "units": 3600, "chunk": 60, "grace_period": "2m"},
		{"id": "free", "unit": "B", "price": 0, "units": 1, "chunk": 1000, "allow_free": true}]}`)
	svcs, err := models.ParseServiceCatalog(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].GracePeriod != 2*time.Minute || svcs[0].Unit != models.UnitSeconds || !svcs[1].Free() {
		t.Fatalf("parsed %+v", svcs)
	}
	for _, c := range []struct{ data, want string }{
		{`{"services": [{"id": "a", "unit": "SEC", "price": 1, "units": 1, "chunk": 1, "grace_period": "soon"}]}`, "grace_period"},
		{`{"services": [{"id": "a", "unit": "SEC", "price": 0, "units": 1, "chunk": 1}]}`, "allow_free"},
		{`{"services": [{"id": "a", "unit": "SEC", "price": 1, "units": 1, "chunk": 1}, {"id": "a", "unit": "SEC", "price": 1, "units": 1, "chunk": 1}]}`, "twice"},
		{`{"services": [{"id": "a", "colour": "red"}]}`, "colour"},
	} {
		_, err := models.ParseServiceCatalog([]byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", c.data, err, c.want)
		}
	}
}

// The README's table lists every usage error code with its meaning.
func TestReadmeListsUsageErrorCodes(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for code, meaning := range models.UsageErrorMeaning {
		if row := "| `" + string(code) + "` | " + meaning + " |"; !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the row %q", row)
		}
	}
}
