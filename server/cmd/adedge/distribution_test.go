package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/builder/publish"
	"github.com/adedge/adedge/snapshot/manifestsig"
	"github.com/adedge/adedge/tools/gen"
)

// TestDistributionWiring runs the real edge wiring with --manifest against an
// in-process builder: the edge starts with an empty snapshot dir, fetches the
// production snapshot, serves it, and reports distribution in /health and
// /metrics.
func TestDistributionWiring(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "inv")
	if _, err := gen.Generate(inv, gen.Scales["small"], 7, nil); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := filepath.Join(t.TempDir(), "k")
	if err := manifestsig.WriteKeys(keys, pub, priv); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.31:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := publish.New(publish.Options{Input: inv, Data: t.TempDir(), Key: priv, PublicURL: "http://" + ln.Addr().String(),
		BindIP: "127.0.0.31", Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	v, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Promote(v); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.Handler()}
	go srv.Serve(ln)
	defer srv.Close()

	cfg, err := parseFlags([]string{"--snapshot-dir", t.TempDir(), "--listen", "127.0.0.32:0", "--admin", "127.0.0.1:0",
		"--manifest", "http://" + ln.Addr().String() + "/v1/manifest", "--pubkey", keys + ".pub", "--manifest-poll", "200ms"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan [2]string, 1)
	go func() {
		done <- run(ctx, cfg, func(s, a net.Addr) { ready <- [2]string{s.String(), a.String()} })
	}()
	var addr, admin string
	select {
	case a := <-ready:
		addr, admin = a[0], a[1]
	case err := <-done:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("edge did not start")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	get := func(u string) string {
		res, err := http.Get(u)
		if err != nil {
			return ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	var health string
	for {
		health = get("http://" + addr + "/health")
		if strings.Contains(health, `"version":"`+v+`"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge never served %s: %s", v, health)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(health, `"distribution":{"state":"idle","channel":"production","target":"`+v+`"`) {
		t.Errorf("/health: %s", health)
	}
	m := get("http://" + admin + "/metrics")
	if !strings.Contains(m, `adedge_distribution_bytes_total{direction="down",via="torrent"}`) {
		t.Errorf("/metrics lacks the distribution byte counters")
	}
}
