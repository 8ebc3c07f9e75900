package distrib

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// swarm is a tracker on loopback plus helpers to make clients on distinct
// 127.0.0.x addresses (bans are per IP, so each client needs its own).
type swarm struct {
	t        *testing.T
	announce string
	tr       *Tracker
}

func newSwarm(t *testing.T) *swarm {
	tr := &Tracker{Interval: 2 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/announce", tr.Handler())
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &swarm{t: t, announce: "http://" + ln.Addr().String() + "/announce", tr: tr}
}

func (s *swarm) client(ip string, up *rate.Limiter) *Client {
	c, err := NewClient(Options{BindIP: ip, Seed: true, Upload: up})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func randomFile(t *testing.T, dir string, n int) (string, []byte) {
	b := make([]byte, n)
	rand.Read(b)
	p := filepath.Join(dir, "x.snap")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func waitDone(t *testing.T, tt *Torrent, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := tt.WaitDone(ctx); err != nil {
		t.Fatalf("download incomplete after %s: %d of %d bytes", d, tt.BytesCompleted(), tt.Length())
	}
}

func TestMakeAndParseTorrent(t *testing.T) {
	p, _ := randomFile(t, t.TempDir(), 1<<20+17)
	mi, err := MakeTorrent(p, 64<<10, "http://127.0.0.1:1/announce", "http://127.0.0.1:1/v1/webseed/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	ih := mi.HashInfoBytes().HexString()
	if _, err := ParseTorrent(b, ih, "x.snap", 1<<20+17); err != nil {
		t.Fatal(err)
	}
	info, _ := mi.UnmarshalInfo()
	if info.Private == nil || !*info.Private || info.NumPieces() != 17 {
		t.Fatalf("private %v pieces %d", info.Private, info.NumPieces())
	}
	// A wrong infohash: the real one with its first digit changed, never
	// equal to it (replacing two digits by "00" was, 1 run in 256).
	wrong := []byte(ih)
	if wrong[0] == '0' {
		wrong[0] = '1'
	} else {
		wrong[0] = '0'
	}
	if _, err := ParseTorrent(b, string(wrong), "x.snap", 1<<20+17); err == nil {
		t.Fatal("wrong infohash accepted")
	}
	if _, err := ParseTorrent(b, ih, "y.snap", 1<<20+17); err == nil {
		t.Fatal("wrong name accepted")
	}
	if _, err := ParseTorrent([]byte("d4:infoi3ee"), ih, "x.snap", 1); err == nil {
		t.Fatal("junk accepted")
	}
}

// TestCorruptPeerRejected: a peer serving flipped bytes gets its pieces
// rejected by hash and its IP banned; the download completes byte-exact from
// the honest seeder.
func TestCorruptPeerRejected(t *testing.T) {
	sw := newSwarm(t)
	dir := t.TempDir()
	p, want := randomFile(t, dir, 6<<20)
	mi, err := MakeTorrent(p, 64<<10, sw.announce, "")
	if err != nil {
		t.Fatal(err)
	}
	// The honest origin is slow, the liar fast, so the downloader asks the
	// liar for most pieces first.
	origin := sw.client("127.0.0.2", rate.NewLimiter(2<<20, 256<<10))
	if _, err := origin.Seed(mi, p); err != nil {
		t.Fatal(err)
	}
	liar := sw.client("127.0.0.3", nil)
	if _, err := liar.add(mi, StoreOptions{Path: p, Complete: true, ReadHook: func(b []byte, off int64) {
		for i := range b {
			b[i] ^= 0x5a
		}
	}}); err != nil {
		t.Fatal(err)
	}
	dl := sw.client("127.0.0.4", nil)
	out := filepath.Join(t.TempDir(), "x.snap")
	tt, err := dl.Download(mi, StoreOptions{Path: out, PiecesPath: out + ".pieces"})
	if err != nil {
		t.Fatal(err)
	}
	tt.AddPeers([]string{liar.Addr()})
	waitDone(t, tt, 60*time.Second)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, want) {
		t.Fatal("downloaded bytes differ from the original")
	}
	tot := dl.Totals()
	if tot.BadPieces == 0 {
		t.Fatal("no piece was rejected: the corrupt peer was never used")
	}
	if !slices.Contains(dl.BadPeerIPs(), "127.0.0.3") {
		t.Fatalf("corrupt peer not banned; banned %v", dl.BadPeerIPs())
	}
	t.Logf("bad pieces %d, banned %v, torrent bytes %d", tot.BadPieces, dl.BadPeerIPs(), tot.TorrentDown)
}

// TestResumeAfterRestart: a client closed mid-download keeps its verified
// pieces; a new client on the same files fetches only the rest.
func TestResumeAfterRestart(t *testing.T) {
	sw := newSwarm(t)
	p, want := randomFile(t, t.TempDir(), 6<<20)
	mi, _ := MakeTorrent(p, 64<<10, sw.announce, "")
	origin := sw.client("127.0.0.2", rate.NewLimiter(3<<20, 256<<10))
	if _, err := origin.Seed(mi, p); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.snap")
	so := StoreOptions{Path: out, PiecesPath: out + ".pieces"}
	dl, err := NewClient(Options{BindIP: "127.0.0.5", Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := dl.Download(mi, so)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for tt.BytesCompleted() < 2<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	dl.Close()
	had := int64(CompletedPieces(so.PiecesPath)) * 64 << 10
	if had < 1<<20 || had >= 6<<20 {
		t.Fatalf("pieces recorded before the restart: %d bytes", had)
	}
	dl2 := sw.client("127.0.0.5", nil)
	tt2, err := dl2.Download(mi, so)
	if err != nil {
		t.Fatal(err)
	}
	if c := tt2.BytesCompleted(); c < had {
		t.Fatalf("after restart %d bytes complete, had %d", c, had)
	}
	waitDone(t, tt2, 60*time.Second)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, want) {
		t.Fatal("resumed download differs")
	}
	fetched := dl2.Totals().TorrentDown
	if fetched > 6<<20-had+512<<10 {
		t.Fatalf("second session fetched %d bytes, but only %d were missing", fetched, 6<<20-had)
	}
	t.Logf("had %d before the restart, fetched %d after", had, fetched)
}
