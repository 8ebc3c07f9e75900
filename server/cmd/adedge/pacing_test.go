package main

import (
	"strings"
	"testing"
)

func TestPacingFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--pacing-curve", "1,2,3"},
		{"--pacing-edges", "0"},
		{"--pacing-stale-after", "10ms"},
		{"--spend", "redis://x"},
		{"--pacing-curve-from", "clickhouse://x"},
		{"--pacing-curve-from", "http://"},
	} {
		if _, err := parseFlags(append([]string{"--snapshot-dir", "x"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	cfg, err := parseFlags([]string{"--snapshot-dir", "x", "--spend", "local", "--pacing-curve", strings.Repeat("1,", 23) + "3", "--pacing-edges", "8",
		"--pacing-curve-from", "http://127.0.0.1:8123/?database=ads"})
	if err != nil || cfg.pace.edges != 8 || cfg.pace.parsedCurve[23] != 3 || cfg.pace.curveTarget == nil || cfg.pace.curveTarget.Database != "ads" {
		t.Fatalf("%+v %v", cfg, err)
	}
	// A malformed Aerospike URL is refused when the edge starts, naming the flag.
	p := paceFlags{spend: "aerospike://nohost"}
	if _, err := p.start(nil, nil, nil); err == nil || !strings.Contains(err.Error(), "--spend") {
		t.Fatalf("bad --spend: %v", err)
	}
}
