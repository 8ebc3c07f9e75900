package publish

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/adedge/adedge/snapshot/distrib"
	"github.com/adedge/adedge/tools/gen"
)

// Standard BitTorrent clients from Debian (aria2, transmission-cli) against
// the builder's tracker: issue 14 found every announce answered with an
// empty `failure reason`, which such clients take as a failed announce.

// stdClient is one standard client: download runs it until the file in
// dir is complete (then stops it); seed starts it seeding the file already
// in dir and returns a stop function.
type stdClient struct {
	name, bin string
	// downloadWithin bounds its download from the builder: Transmission
	// first connects ~10 s after it got the peer (its own pacing).
	downloadWithin time.Duration
	// seedWithin bounds the edge's download from this client as the seed:
	// Transmission unchokes a new peer at its next 10 s rechoke.
	seedWithin time.Duration
	// noLoopbackDial: the client never dials a 127/8 peer (libtransmission
	// counts 127/8 as a martian address), so the builder it downloads from
	// must listen on another address of this machine.
	noLoopbackDial bool
	download       func(t *testing.T, torrent, dir string, port int) *exec.Cmd
	seed           func(t *testing.T, torrent, dir string, port int) *exec.Cmd
}

var stdClients = []stdClient{
	{name: "aria2c", bin: "aria2c", downloadWithin: 10 * time.Second, seedWithin: 10 * time.Second,
		download: func(t *testing.T, torrent, dir string, port int) *exec.Cmd {
			return exec.Command("aria2c", append(aria2Args(dir, port), "--seed-time=0", torrent)...)
		},
		seed: func(t *testing.T, torrent, dir string, port int) *exec.Cmd {
			return exec.Command("aria2c", append(aria2Args(dir, port), "--check-integrity=true", "--seed-ratio=0.0", torrent)...)
		}},
	{name: "transmission-cli", bin: "transmission-cli", downloadWithin: 30 * time.Second, seedWithin: 30 * time.Second, noLoopbackDial: true,
		download: func(t *testing.T, torrent, dir string, port int) *exec.Cmd {
			return exec.Command("transmission-cli", transmissionArgs(t, torrent, dir, port)...)
		},
		seed: func(t *testing.T, torrent, dir string, port int) *exec.Cmd {
			return exec.Command("transmission-cli", transmissionArgs(t, torrent, dir, port)...)
		}},
}

// aria2Args: only the tracker finds peers (no DHT, LPD, PEX), on a port of
// the test's own.
func aria2Args(dir string, port int) []string {
	return []string{"--dir=" + dir, "--listen-port=" + strconv.Itoa(port), "--enable-dht=false", "--enable-dht6=false",
		"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--summary-interval=0", "--console-log-level=warn",
		"--file-allocation=none", "--allow-overwrite=true", "--auto-save-interval=0", "--bt-save-metadata=false",
		"--rpc-save-upload-metadata=false", "--no-conf=true", "--disable-ipv6=true"}
}

// transmissionArgs writes a settings.json into a config dir of its own
// (no DHT, LPD, PEX, uTP or port mapping) and points the client at it.
func transmissionArgs(t *testing.T, torrent, dir string, port int) []string {
	conf := t.TempDir()
	settings := fmt.Sprintf(`{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
 "port-forwarding-enabled": false, "peer-port": %d, "rename-partial-files": true, "incomplete-dir-enabled": false,
 "download-dir": %q, "message-level": 2, "ratio-limit-enabled": false}`, port, dir)
	if err := os.WriteFile(filepath.Join(conf, "settings.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-g", conf, "-w", dir, "-p", strconv.Itoa(port), "-M", "-D", "-U", "-et", torrent}
}

// needClient skips outside CI and fails under CI=true when bin is missing
// (.ci/run installs it).
func needClient(t *testing.T, bin string) {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (.ci/run installs it): %v", bin, err)
		}
		t.Skipf("%s not installed: %v", bin, err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs cmd with its output in a buffer (logged on failure) and stops
// it at the end of the test.
func start(t *testing.T, cmd *exec.Cmd) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), tail(out.String(), 4000))
		}
	})
	return &out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// waitFile polls until path holds exactly want, or the deadline.
func waitFile(t *testing.T, path string, want []byte, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if got, err := os.ReadFile(path); err == nil && bytes.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			got, _ := os.ReadFile(path)
			t.Fatalf("%s not byte-exact after %s (%d of %d bytes)", path, within, len(got), len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withoutURLList is the .torrent with its BEP 19 url-list removed, so only
// BitTorrent peers can serve it.
func withoutURLList(t *testing.T, torrent []byte) (*metainfo.MetaInfo, []byte) {
	t.Helper()
	mi, err := metainfo.Load(bytes.NewReader(torrent))
	if err != nil {
		t.Fatal(err)
	}
	mi.UrlList = nil
	b, err := distrib.EncodeTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("url-list")) {
		t.Fatal("url-list still in the .torrent")
	}
	return mi, b
}

// TestStandardClientsDownloadFromBuilder: a published snapshot's .torrent
// without its url-list downloads byte-exact within 10 s through the
// builder's tracker, from the builder's own seed, with aria2c and with
// transmission-cli.
func TestStandardClientsDownloadFromBuilder(t *testing.T) {
	input := t.TempDir()
	if _, err := gen.Generate(input, gen.Scales["small"], 3, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range stdClients {
		t.Run(c.name, func(t *testing.T) {
			needClient(t, c.bin)
			ip := "127.0.0.41"
			if c.noLoopbackDial {
				if ip = otherIPv4(); ip == "" {
					t.Skipf("%s dials no 127/8 peer and this machine has no other IPv4 address", c.name)
				}
			}
			v, snap, torrent := publishOne(t, input, ip)
			mi, stripped := withoutURLList(t, torrent)
			info, err := mi.UnmarshalInfo()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			tf := filepath.Join(t.TempDir(), v+".torrent")
			if err := os.WriteFile(tf, stripped, 0o644); err != nil {
				t.Fatal(err)
			}
			start(t, c.download(t, tf, dir, freePort(t)))
			took := waitFile(t, filepath.Join(dir, info.Name), snap, c.downloadWithin)
			t.Logf("%s: %d bytes byte-exact in %s through the builder's tracker on %s", c.name, len(snap), took.Round(time.Millisecond), ip)
		})
	}
}

// publishOne runs a builder on ip (tracker, seed, HTTP) that has built one
// snapshot, and returns its version, bytes and .torrent.
func publishOne(t *testing.T, input, ip string) (string, []byte, []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Input: input, Data: t.TempDir(), Key: key, PublicURL: "http://" + ln.Addr().String(), BindIP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	srv := &http.Server{Handler: p.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	v, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := os.ReadFile(p.o.snapPath(v))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get("http://" + ln.Addr().String() + "/v1/torrent/" + v + ".torrent")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	tb, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET .torrent: %s", res.Status)
	}
	return v, snap, tb
}

// otherIPv4 is an IPv4 address of this machine outside 127/8, or "".
func otherIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// TestStandardClientSeedsEdge: a standard client that has the file seeds
// it to an edge's BitTorrent client (distrib, as the edge's fetcher uses
// it) through the builder's tracker; nobody else has it.
func TestStandardClientSeedsEdge(t *testing.T) {
	dir := t.TempDir()
	name := "20261201T000000Z-00000000.snap"
	want := make([]byte, 3<<20+12345)
	for i := range want {
		want[i] = byte(i*7 + i>>11)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.42:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &distrib.Tracker{Interval: 2 * time.Second}
	srv := &http.Server{Handler: tr.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	mi, err := distrib.MakeTorrent(path, 256<<10, "http://"+ln.Addr().String()+"/announce", "")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := distrib.EncodeTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	ih := mi.HashInfoBytes().HexString()
	for i, c := range stdClients {
		t.Run(c.name, func(t *testing.T) {
			needClient(t, c.bin)
			seedDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(seedDir, name), want, 0o644); err != nil {
				t.Fatal(err)
			}
			tf := filepath.Join(t.TempDir(), "x.torrent")
			if err := os.WriteFile(tf, tb, 0o644); err != nil {
				t.Fatal(err)
			}
			out := start(t, c.seed(t, tf, seedDir, freePort(t)))
			// The seed is in the swarm once its announce arrived.
			deadline := time.Now().Add(10 * time.Second)
			for tr.Peers(ih) < 1 {
				if time.Now().After(deadline) {
					t.Fatalf("%s never announced to the tracker:\n%s", c.name, tail(out.String(), 2000))
				}
				time.Sleep(20 * time.Millisecond)
			}
			edge, err := distrib.NewClient(distrib.Options{BindIP: fmt.Sprintf("127.0.0.%d", 43+i)})
			if err != nil {
				t.Fatal(err)
			}
			defer edge.Close()
			got := filepath.Join(t.TempDir(), name)
			tt, err := edge.Download(mi, distrib.StoreOptions{Path: got})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.seedWithin)
			defer cancel()
			t0 := time.Now()
			// The library announces at once; ask again until the seed is
			// among the peers (a seed that was still checking the file
			// may have announced before it could serve).
			for done := false; !done; {
				select {
				case <-tt.Done():
					done = true
				case <-ctx.Done():
					t.Fatalf("edge got %d of %d bytes from %s in %s", tt.BytesCompleted(), len(want), c.name, c.seedWithin)
				case <-time.After(500 * time.Millisecond):
					if tt.Peers() == 0 {
						_, _ = tt.Announce(ctx, mi.Announce)
					}
				}
			}
			took := time.Since(t0)
			if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
				t.Fatalf("edge's file differs (%d bytes, %v)", len(b), err)
			}
			if strings.Contains(out.String(), "failure reason") {
				t.Errorf("%s saw a failure reason:\n%s", c.name, out)
			}
			t.Logf("%s seeded %d bytes to the edge in %s", c.name, len(want), took.Round(time.Millisecond))
		})
	}
}
