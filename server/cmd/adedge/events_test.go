package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adedge/adedge/server/token"
)

func TestEventFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--events-clickhouse", "http://x"},
		{"--events-dir", "d", "--events-fsync", "0"},
		{"--events-dir", "d", "--events-sample-ads", "2"},
		{"--events-dir", "d", "--events-max-bytes", "10"},
		{"--events-dir", "d", "--events-dedup-max", "0"},
	} {
		if _, err := parseFlags(append([]string{"--snapshot-dir", "x"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestEventsSurviveRestart: the real wiring with --events-dir: a pixel is
// recorded, the edge restarts on the same log, and the replayed pixel is a
// duplicate (answered 204, counted 0 times) because the recent-id set is
// rebuilt from the log.
func TestEventsSurviveRestart(t *testing.T) { eachLoop(t, testEventsSurviveRestart) }

func testEventsSurviveRestart(t *testing.T, loop []string) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(token.GenerateKey())), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := append(loop, "--events-dir", dir, "--token-key", keyFile, "--edge-name", "e1")
	p := startEdge(t, flags...)
	c := client()
	body := get(t, c, "http://"+p.addr+"/v1/ad?placement=pl-0000001&country=US&os=android&osv=12")
	var ad struct {
		ImpressionURL string `json:"impression_url"`
	}
	if err := json.Unmarshal([]byte(body), &ad); err != nil || ad.ImpressionURL == "" {
		t.Fatalf("no fill: %s", body)
	}
	pixel := "http://" + p.addr + ad.ImpressionURL[strings.Index(ad.ImpressionURL, "/v1/imp"):]
	status := func(u string) int {
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if s := status(pixel); s != http.StatusNoContent {
		t.Fatalf("pixel: %d", s)
	}
	if h := get(t, c, "http://"+p.addr+"/health"); !strings.Contains(h, `"events":{"log_bytes":`) {
		t.Fatalf("/health has no events member: %s", h)
	}
	p.stop()
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
	p.done <- nil

	p2 := startEdge(t, flags...)
	pixel2 := strings.Replace(pixel, p.addr, p2.addr, 1)
	if s := status(pixel2); s != http.StatusNoContent {
		t.Fatalf("replayed pixel after restart: %d", s)
	}
	m := get(t, c, "http://"+p2.admin+"/metrics")
	for _, want := range []string{"adedge_events_duplicates_total 1", "adedge_impressions_total 0", "adedge_events_tracked_total 0"} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "adedge_events_"))
		}
	}
}
