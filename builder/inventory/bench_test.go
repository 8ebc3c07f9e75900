package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// benchLines returns the lines of a generated file.
func benchLines(b *testing.B, name string) [][]byte {
	b.Helper()
	dir := b.TempDir()
	genInventory(b, dir, genConfig{Campaigns: 2000, CreativesPerCampaign: 5, Placements: 5000, Seed: 3})
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(raw, []byte{'\n'}), []byte{'\n'})
}

func setBytes(b *testing.B, lines [][]byte) {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	b.SetBytes(int64(n / len(lines)))
}

// The line benchmarks decode and validate one line per op, as Load does
// (Load adds reading, sorting and cross-checks).

func BenchmarkDecodeCampaignLine(b *testing.B) {
	lines := benchLines(b, CampaignsFile)
	setBytes(b, lines)
	d := newLineDecoder()
	var ms msgs
	var f campaignFacts
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var c Campaign
		present, ok := d.campaign(lines[i%len(lines)], &c)
		ms = ms[:0]
		validateCampaign(&c, present, &f, &ms)
		if !ok || len(d.msgs)+len(ms) > 0 {
			b.Fatal(d.msgs, ms)
		}
	}
}

func BenchmarkDecodeCreativeLine(b *testing.B) {
	lines := benchLines(b, CreativesFile)
	setBytes(b, lines)
	d := newLineDecoder()
	var ms msgs
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var c Creative
		present, ok := d.creative(lines[i%len(lines)], &c)
		ms = ms[:0]
		validateCreative(&c, present, &ms)
		if !ok || len(d.msgs)+len(ms) > 0 {
			b.Fatal(d.msgs, ms)
		}
	}
}

func BenchmarkDecodePlacementLine(b *testing.B) {
	lines := benchLines(b, PlacementsFile)
	setBytes(b, lines)
	d := newLineDecoder()
	var ms msgs
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var p Placement
		present, ok := d.placement(lines[i%len(lines)], &p)
		ms = ms[:0]
		validatePlacement(&p, present, &ms)
		if !ok || len(d.msgs)+len(ms) > 0 {
			b.Fatal(d.msgs, ms)
		}
	}
}

func BenchmarkDecodePredictionLine(b *testing.B) {
	lines := benchLines(b, PredictionsFile)
	setBytes(b, lines)
	d := newLineDecoder()
	var ms msgs
	var p predLine
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		present, ok := d.prediction(lines[i%len(lines)], &p)
		ms = ms[:0]
		validatePrediction(&p, present, &ms)
		if !ok || len(d.msgs)+len(ms) > 0 {
			b.Fatal(d.msgs, ms)
		}
	}
}

// BenchmarkStdlibCampaignLine is the baseline the hand-written decoder
// replaced: encoding/json with DisallowUnknownFields, one Decoder a line,
// decoding only (no validation).
func BenchmarkStdlibCampaignLine(b *testing.B) {
	lines := benchLines(b, CampaignsFile)
	setBytes(b, lines)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var c Campaign
		dec := json.NewDecoder(bytes.NewReader(lines[i%len(lines)]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdlibCreativeLine(b *testing.B) {
	lines := benchLines(b, CreativesFile)
	setBytes(b, lines)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var c Creative
		dec := json.NewDecoder(bytes.NewReader(lines[i%len(lines)]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad loads a generated ~40 MB inventory (20k campaigns, 100k
// creatives, 50k placements, ~150k predictions); MB/s is over all files.
func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	genInventory(b, dir, genConfig{Campaigns: 20000, CreativesPerCampaign: 5, Placements: 50000, Seed: 5, Shuffle: true})
	var total int64
	for _, name := range Files {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		total += st.Size()
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(dir, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
