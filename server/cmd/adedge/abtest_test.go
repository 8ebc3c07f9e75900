package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/abtest/rows"
)

func TestABFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--staging-percent", "101"},
		{"--staging-percent", "-1"},
		{"--staging-upstream", "no-port"},
		{"--staging-upstream", ","},
		{"--report-interval", "10ms"},
	} {
		if _, err := parseFlags(append([]string{"--snapshot-dir", "x"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestStagingAndRowsEndToEnd: a staging edge and a production edge sending
// every device to it, the real wiring of run(): answers come from staging,
// and on shutdown both write rows files that read back.
func TestStagingAndRowsEndToEnd(t *testing.T) {
	stRows, prRows := t.TempDir(), t.TempDir()
	stg := startEdge(t, "--env", "staging", "--report-dir", stRows, "--edge-name", "stg")
	// The wiring is under test, not the 20 ms default timeout: a loaded
	// machine can take longer than that to dial staging the first time,
	// and the request would be served here.
	prd := startEdge(t, "--staging-percent", "100", "--staging-upstream", stg.addr, "--report-dir", prRows, "--edge-name", "prd",
		"--staging-timeout", "10s")
	c := client()
	q := "/v1/ad?placement=pl-0000001&country=US&os=android&osv=12"
	for i, dev := range []string{"dev-a", "dev-b", ""} {
		resp, err := c.Get("http://" + prd.addr + q + "&device=" + dev)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "staging"
		if dev == "" {
			want = "production" // no device: never staged
		}
		if got := resp.Header.Get("X-Adedge-Env"); got != want {
			t.Fatalf("request %d answered by %q, want %q (%d %s)", i, got, want, resp.StatusCode, body)
		}
	}
	metrics := get(t, c, "http://"+prd.admin+"/metrics")
	if !strings.Contains(metrics, "adedge_staging_forwarded_total 2") {
		t.Fatalf("metrics lack the forwarded count:\n%s", grepLines(metrics, "staging"))
	}
	prd.stop()
	stg.stop()
	<-prd.done
	<-stg.done
	prd.done <- nil // for the cleanup's receive
	stg.done <- nil
	// Requests as the reports count them (report.Totals: breakdown rows
	// repeat the ordinary rows' requests by country, OS and format).
	count := func(dir, env string) uint64 {
		files, _ := rows.ListFiles([]string{dir})
		var tot report.Totals
		for _, f := range files {
			rs, err := rows.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rs {
				if rs[i].Env == env {
					tot.Add(&rs[i])
				}
			}
		}
		return tot.Requests
	}
	if n := count(stRows, "staging"); n != 2 {
		t.Errorf("staging rows count %d requests, want 2", n)
	}
	if n := count(prRows, "production"); n != 1 {
		t.Errorf("production rows count %d requests, want 1 (the unassigned one)", n)
	}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
