package distrib

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestAnnounceFindsLateSeeder: the downloader joins before the seeder has
// announced, so the library's own first announce returns nobody and it would
// wait a minute; Announce asks again and finds the seeder.
func TestAnnounceFindsLateSeeder(t *testing.T) {
	sw := newSwarm(t)
	p, _ := randomFile(t, t.TempDir(), 1<<20)
	mi, _ := MakeTorrent(p, 64<<10, sw.announce, "")
	dl := sw.client("127.0.0.6", nil)
	tt, err := dl.Download(mi, StoreOptions{Path: filepath.Join(t.TempDir(), "x.snap")})
	if err != nil {
		t.Fatal(err)
	}
	// The library's first announce, answered with no peers: the seeder
	// joins only after the tracker has it.
	ih := mi.HashInfoBytes().HexString()
	peers := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); sw.tr.Peers(ih) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("tracker has %d peers, want %d", sw.tr.Peers(ih), n)
			}
		}
	}
	peers(1)
	seed := sw.client("127.0.0.7", nil)
	if _, err := seed.Seed(mi, p); err != nil {
		t.Fatal(err)
	}
	peers(2)
	n, err := tt.Announce(context.Background(), sw.announce)
	if err != nil || n < 1 {
		t.Fatalf("announce: %d peers added, %v", n, err)
	}
	waitDone(t, tt, 10*time.Second)
}
