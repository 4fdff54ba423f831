package workflows

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Recorded histories in testdata/*.json are append-only fixtures: running
// workflows were recorded in them, so every one must keep replaying
// (TestReplayRecordedHistories) and none may be edited or deleted. The
// manifest testdata/fixtures.sha256 lists each with its SHA-256, and
// TestFixtureManifest fails when
//   - a listed fixture is missing or its content differs from its hash,
//   - a testdata/*.json fixture is not listed,
//   - (in a git checkout) a line that any committed version of the manifest
//     had is gone: a fixture cannot be retired by editing the manifest.
//
// To add a fixture: record it (e.g. BILLFLOW_RECORD_HISTORIES=1 on the e2e
// tests) under a NEW file name in testdata/, then append its line:
//
//	cd workflows/testdata && sha256sum NEW.json >> fixtures.sha256
//
// and commit both. A workflow change that no longer replays an old fixture
// goes behind workflow.GetVersion; the old fixture stays as it is.

const manifestPath = "testdata/fixtures.sha256"

var manifestLine = regexp.MustCompile(`^([0-9a-f]{64})  ([A-Za-z0-9._-]+\.json)$`)

// readManifest parses "HASH  NAME" lines (sha256sum's format).
func readManifest(t *testing.T) (map[string]string, []string) {
	t.Helper()
	f, err := os.Open(manifestPath)
	if err != nil {
		t.Fatalf("open the fixture manifest: %v", err)
	}
	defer f.Close()
	hashes := map[string]string{}
	var lines []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := manifestLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s:%d: %q is not \"<sha256>  <name>.json\"", manifestPath, n, line)
		}
		if _, dup := hashes[m[2]]; dup {
			t.Fatalf("%s:%d: %s is listed twice", manifestPath, n, m[2])
		}
		hashes[m[2]] = m[1]
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return hashes, lines
}

func TestFixtureManifest(t *testing.T) {
	hashes, lines := readManifest(t)
	names := make([]string, 0, len(hashes))
	for name := range hashes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Errorf("fixture %s is listed in %s but cannot be read (fixtures are never deleted): %v", name, manifestPath, err)
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != hashes[name] {
			t.Errorf("fixture %s was modified (sha256 %s, manifest says %s): recorded histories are never edited; record a new file instead", name, got, hashes[name])
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := hashes[filepath.Base(f)]; !ok {
			t.Errorf("fixture %s is not listed in %s: append `sha256sum %s` to it (see fixtures_test.go)", f, manifestPath, filepath.Base(f))
		}
	}

	t.Run("history", func(t *testing.T) {
		git, err := exec.LookPath("git")
		if err != nil {
			t.Skip("git is not installed: the manifest's history is not checked")
		}
		if out, err := exec.Command(git, "rev-parse", "--is-inside-work-tree").Output(); err != nil || strings.TrimSpace(string(out)) != "true" {
			t.Skip("not a git checkout: the manifest's history is not checked")
		}
		// Every line ever added to the manifest in a commit must still be
		// in it; this catches a removal in a later commit and one in the
		// working tree alike.
		out, err := exec.Command(git, "log", "-p", "--no-color", "--no-ext-diff", "--format=", "--", manifestPath).Output()
		if err != nil {
			t.Fatalf("git log %s: %v", manifestPath, err)
		}
		current := map[string]bool{}
		for _, l := range lines {
			current[l] = true
		}
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "+") || strings.HasPrefix(l, "+++") {
				continue
			}
			if l = strings.TrimPrefix(l, "+"); !current[l] {
				t.Errorf("a committed version of %s listed %q, which is gone: fixtures and their lines are append-only", manifestPath, l)
			}
		}
	})
}
