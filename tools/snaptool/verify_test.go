package snaptool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/snapshot"
)

func TestVerifyGood(t *testing.T) {
	res := baseWorld().build(t)
	var out bytes.Buffer
	if err := Verify(&out, res.Path, "", VerifyOptions{}); err != nil {
		t.Fatalf("good file: %v\n%s", err, out.String())
	}
	text := out.String()
	perVersion := strings.TrimSuffix(res.Path, ".snap") + ".manifest.json"
	for _, want := range []string{
		`(?m)^  campaigns\s+OK\s+xxhash64 [0-9a-f]{16}\s+1216 bytes$`,
		`(?m)^  candidates\s+OK\s+xxhash64 [0-9a-f]{16}\s+336 bytes$`,
		`all 14 sections OK: .* verified in .* \([0-9.]+ GB/s\)`,
		`(?m)^structure: OK`,
		`(?m)^manifest: ` + regexp.QuoteMeta(perVersion) + ` \(found beside the file\)$`,
		`(?m)^  xxhash64\s+OK\s+` + res.Manifest.XXHash64 + `$`,
		`(?m)^RESULT: OK$`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("verify output lacks %s\n%s", want, text)
		}
	}

	// JSON, with manifest.json as the only manifest beside the file.
	if err := os.Remove(perVersion); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Verify(&out, res.Path, "", VerifyOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	var rep VerifyReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Sections) != 14 || !rep.ReferencesChecked || len(rep.References) != 0 || rep.VerifyGBs <= 0 {
		t.Errorf("report %+v", rep)
	}
	if rep.Manifest == nil || rep.Manifest.Path != res.ManifestPath || len(rep.Manifest.Fields) < 5 {
		t.Errorf("manifest.json not used: %+v", rep.Manifest)
	}
}

func TestVerifyBitFlipNamesSection(t *testing.T) {
	res := baseWorld().build(t)
	good, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := snapshot.OpenBytes(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // no manifest here: only the checksums can fail
	for _, s := range r.Sections() {
		if s.Length == 0 {
			continue // an empty section (no bundles, no media files) has no byte to flip
		}
		b := append([]byte(nil), good...)
		b[s.Offset+s.Length/2] ^= 0x20
		path := filepath.Join(dir, s.Name()+".snap")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := Verify(&out, path, "", VerifyOptions{})
		var ve *VerifyError
		if !errors.As(err, &ve) || !errors.Is(err, ErrVerify) || !errors.Is(err, snapshot.ErrChecksum) {
			t.Fatalf("flip in %s: %v", s.Name(), err)
		}
		if ve.Section != s.Name() || !strings.Contains(err.Error(), s.Name()+" failed its checksum") {
			t.Errorf("flip in %s: section %q, error %q", s.Name(), ve.Section, err)
		}
		text := out.String()
		if !regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(s.Name())+`\s+FAIL\s+xxhash64 [0-9a-f]{16}\s+\d+ bytes\s+checksum mismatch`).MatchString(text) ||
			!strings.Contains(text, "RESULT: FAILED") {
			t.Errorf("flip in %s: output\n%s", s.Name(), text)
		}
		// Every other section is still reported OK.
		if strings.Count(text, "  OK  ") < len(r.Sections())-1 {
			t.Errorf("flip in %s: other sections not listed OK\n%s", s.Name(), text)
		}
	}

	// Header and truncation failures are verification failures too.
	b := append([]byte(nil), good...)
	b[40] ^= 1
	hdr := filepath.Join(dir, "hdr.snap")
	if err := os.WriteFile(hdr, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var ve *VerifyError
	if err := Verify(&bytes.Buffer{}, hdr, "", VerifyOptions{}); !errors.As(err, &ve) || ve.Section != "header" {
		t.Errorf("header flip: %v", err)
	}
	trunc := filepath.Join(dir, "trunc.snap")
	if err := os.WriteFile(trunc, good[:len(good)-7], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(&bytes.Buffer{}, trunc, "", VerifyOptions{}); !errors.Is(err, ErrVerify) || !errors.Is(err, snapshot.ErrTruncated) {
		t.Errorf("truncated: %v", err)
	}
	// A missing file is an operational error, not a verification failure.
	if err := Verify(&bytes.Buffer{}, filepath.Join(dir, "missing.snap"), "", VerifyOptions{}); err == nil || errors.Is(err, ErrVerify) {
		t.Errorf("missing file: %v", err)
	}
}

func TestVerifyManifestMismatch(t *testing.T) {
	res := baseWorld().build(t)
	mb, err := os.ReadFile(res.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var m snapshot.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	bad := m
	bad.XXHash64 = "0123456789abcdef"
	badPath := filepath.Join(t.TempDir(), "bad.manifest.json")
	writeManifest(t, badPath, &bad)

	var out bytes.Buffer
	err = Verify(&out, res.Path, badPath, VerifyOptions{})
	if !errors.Is(err, ErrVerify) || errors.Is(err, snapshot.ErrChecksum) || !strings.Contains(err.Error(), "xxhash64") {
		t.Fatalf("hash mismatch: %v", err)
	}
	if !regexp.MustCompile(`(?m)^  xxhash64\s+MISMATCH\s+manifest 0123456789abcdef, file `+m.XXHash64+`$`).MatchString(out.String()) ||
		!strings.Contains(out.String(), "manifest: "+badPath+" (given)") {
		t.Errorf("output\n%s", out.String())
	}

	bad = m
	bad.Size++
	writeManifest(t, badPath, &bad)
	if err := Verify(&bytes.Buffer{}, res.Path, badPath, VerifyOptions{}); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "size") {
		t.Errorf("size mismatch: %v", err)
	}

	// A manifest.json beside the file that describes another build is
	// skipped with a note, not compared.
	dir := t.TempDir()
	snap := filepath.Join(dir, filepath.Base(res.Path))
	copyFile(t, res.Path, snap)
	other := m
	other.Version = "20270116T000000Z-deadbeef"
	other.File = other.Version + ".snap"
	writeManifest(t, filepath.Join(dir, "manifest.json"), &other)
	out.Reset()
	if err := Verify(&out, snap, "", VerifyOptions{}); err != nil {
		t.Fatalf("unrelated manifest.json compared: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "skipped: it describes 20270116T000000Z-deadbeef.snap") {
		t.Errorf("no skip note\n%s", out.String())
	}

	// An unparsable manifest given explicitly fails verification.
	if err := os.WriteFile(badPath, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(&bytes.Buffer{}, res.Path, badPath, VerifyOptions{}); !errors.Is(err, ErrVerify) {
		t.Errorf("bad manifest: %v", err)
	}
}

func writeManifest(t *testing.T, path string, m *snapshot.Manifest) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckReferencesCrafted writes files whose checksums are valid but
// whose records point out of range, and expects each problem reported.
func TestCheckReferencesCrafted(t *testing.T) {
	res := baseWorld().build(t)
	le := binary.LittleEndian
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.snap")
	us, _ := snapshot.CountryIndex("US")
	busy := snapshot.KeyIndex(snapshot.FormatBanner, us, snapshot.OSAndroid)
	var busyOff int
	reseal(t, res.Path, path, func(id uint32, b []byte) {
		switch id {
		case snapshot.SecCandidateIndex: // written before the candidates
			busyOff = int(le.Uint32(b[busy*snapshot.RefSize:]))
		case snapshot.SecCampaigns:
			le.PutUint32(b[0*snapshot.CampaignSize+8:], 99)       // c-01's advertiser index
			le.PutUint32(b[1*snapshot.CampaignSize+0:], 1<<30)    // c-02's id string offset
			le.PutUint32(b[2*snapshot.CampaignSize+96+4:], 1<<20) // c-03's countries length
		case snapshot.SecCandidates:
			// Candidate 0 is the first list's first entry: point its
			// creatives outside its campaign's. Break the order of the
			// busiest list by making its second entry outrank the first.
			le.PutUint32(b[4:], le.Uint32(b[4:])+1000)
			le.PutUint64(b[(busyOff+1)*snapshot.CandidateSize+16:], 1<<40)
		case snapshot.SecPlacements:
			b[16] = 9 // p-banner's format
		}
	})
	r, err := snapshot.Open(path)
	if err != nil {
		t.Fatalf("resealed file must pass the checksums: %v", err)
	}
	defer r.Close()
	probs := CheckReferences(r)
	all := strings.Join(probs, "\n")
	for _, want := range []string{
		"campaign c-01 (#0): advertiser index 99 out of range (6 advertisers)",
		"campaign #1: id string ref 1073741824+4 outside the",
		"campaign c-03 (#2): countries list ref",
		"candidate list banner/DE/android [0] campaign c-01: creatives 1000+1 outside the campaign's creatives 0+2",
		"candidate list banner/US/android [1]: not sorted by eCPM desc, campaign asc (c-05 eCPM 1099511.627776 after #1 eCPM 5.00)", // c-02, whose id ref is broken
		"placement p-banner (#0): format bits 0x09 invalid",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}

	var out bytes.Buffer
	err = Verify(&out, path, "", VerifyOptions{})
	if !errors.Is(err, ErrVerify) || errors.Is(err, snapshot.ErrChecksum) {
		t.Fatalf("verify of a structurally bad file: %v", err)
	}
	if !strings.Contains(out.String(), "structure: ") || !strings.Contains(out.String(), "advertiser index 99") {
		t.Errorf("output\n%s", out.String())
	}

	// The cap holds.
	if p := checkReferences(r, 2); len(p) != 3 || !strings.HasPrefix(p[2], "... and ") {
		t.Errorf("capped problems %q", p)
	}
	// And a clean build has none.
	good, err := snapshot.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if p := CheckReferences(good); len(p) != 0 {
		t.Errorf("clean build has problems: %q", p)
	}
}

// TestVerifyRefusesWhatTheEdgeRefuses: an experiment set the edge would
// refuse (and so serve everyone as control) fails verify, with abtest's
// message for each rule the issue names.
func TestVerifyRefusesWhatTheEdgeRefuses(t *testing.T) {
	res := baseWorld().build(t)
	data, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := snapshot.OpenBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, set, want string }{
		{"empty salt", `{"id":"e","salt":"","tests":[]}`, "experiments: salt: required: must be non-empty"},
		{"test named control", `{"id":"e","salt":"s","tests":[{"id":"control","variant":"v","share_bp":100,"params":{}}]}`,
			`experiments: tests[0].id: "control" is reserved for the control group`},
		{"zero share", `{"id":"e","salt":"s","tests":[{"id":"t1","variant":"v","share_bp":0,"params":{}}]}`,
			"experiments: tests[0].share_bp: must be >= 1"},
		{"unknown parameter", `{"id":"e","salt":"s","tests":[{"id":"t1","variant":"v","share_bp":100,"params":{"weight_cpx":1}}]}`,
			`experiments: tests[0].params: unknown parameter "weight_cpx"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The same snapshot with only the experiments section replaced.
			var buf bytes.Buffer
			w, err := snapshot.NewWriter(&buf, src.Header())
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range src.Sections() {
				b := data[s.Offset : s.Offset+s.Length]
				if s.ID == snapshot.SecExperiments {
					b = []byte(c.set)
				}
				if err := w.WriteSection(s.ID, s.RecordSize, b); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "exp.snap")
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := abtest.ParseSet([]byte(c.set)); err == nil {
				t.Fatal("the edge's parser accepts the set")
			}
			var out bytes.Buffer
			err = Verify(&out, path, "", VerifyOptions{NoManifest: true})
			if !errors.Is(err, ErrVerify) || !strings.Contains(out.String(), c.want) {
				t.Fatalf("verify: %v\n%s", err, out.String())
			}
		})
	}
}
