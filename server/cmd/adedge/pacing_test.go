package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/aerokit"
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

// pacingView is what TestSpendStoreDown reads: /health's pacing part and
// the pacing metrics.
type pacingView struct {
	status, state, reason string
	reasons               []string
	errors, age, fallback float64
	pacingCampaigns       float64
}

func readPacing(t *testing.T, c *http.Client, p *edgeProc) pacingView {
	t.Helper()
	var h struct {
		Status  string
		Reasons []string
		Pacing  struct{ State, Reason string }
	}
	res, err := c.Get("http://" + p.addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	v := pacingView{status: h.Status, state: h.Pacing.State, reason: h.Pacing.Reason, reasons: h.Reasons}
	m := get(t, c, "http://"+p.admin+"/metrics")
	metric := func(name string) float64 {
		for _, line := range strings.Split(m, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == name {
				x, err := strconv.ParseFloat(f[1], 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return x
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	v.errors = metric("adedge_pacing_store_errors_total")
	v.age = metric("adedge_pacing_last_flush_age_seconds")
	v.fallback = metric("adedge_pacing_fallback_campaigns")
	v.pacingCampaigns = metric(`adedge_pacing_campaigns{state="pacing"}`) + metric(`adedge_pacing_campaigns{state="capped"}`)
	return v
}

// TestSpendStoreDown is issue 11's failure case through the real adedge
// wiring (--spend aerospike:// against the kit's server): while the store
// answers, /health says pacing ok and the budgeted campaigns pace; with
// the server killed, /health turns degraded with reason pacing_degraded
// and the store's error, the store errors count, the last good flush ages
// past --pacing-stale-after and the campaigns fall back to own spend;
// restarted, all of it clears.
func TestSpendStoreDown(t *testing.T) {
	srv := aerokit.Start(t)
	p := startEdge(t, "--spend", "aerospike://"+srv.Addr()+"/test/spend_down", "--pacing-stale-after", "1s", "--pacing-edges", "4")
	c := client()
	poll := func(what string, ok func(v pacingView) bool) pacingView {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			v := readPacing(t, c, p)
			if ok(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never; last %+v", what, v)
			}
			time.Sleep(50 * time.Millisecond) // polling the edge's state
		}
	}
	up := poll("pacing ok with budgeted campaigns pacing", func(v pacingView) bool {
		return v.state == "ok" && v.age >= 0 && v.age < 5 && v.pacingCampaigns > 0 && v.fallback == 0
	})
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	down := poll("degraded, stale and falling back", func(v pacingView) bool {
		return v.status == "degraded" && v.state == "degraded" && v.errors > up.errors && v.age > 1 && v.fallback > 0
	})
	if !strings.Contains(strings.Join(down.reasons, ","), "pacing_degraded") || !strings.Contains(down.reason, "spend store aerospike://") {
		t.Fatalf("degraded without the reason: %+v", down)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	poll("ok again after the restart", func(v pacingView) bool {
		return v.state == "ok" && v.age < 5 && v.fallback == 0
	})
}
