package profiles

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestProfileHasAppAndSegment(t *testing.T) {
	p := Profile{
		Segments:      []string{"gamers", "sports"},
		InstalledApps: sortApps([]uint64{AppHash("com.b"), AppHash("com.a"), AppHash("com.c"), AppHash("com.a")}),
	}
	if len(p.InstalledApps) != 3 {
		t.Fatalf("duplicates kept: %v", p.InstalledApps)
	}
	for _, app := range []string{"com.a", "com.b", "com.c"} {
		if !p.HasApp(AppHash(app)) {
			t.Errorf("HasApp(%s) = false", app)
		}
	}
	if p.HasApp(AppHash("com.d")) {
		t.Error("HasApp(com.d) = true")
	}
	if !p.HasSegment("sports") || p.HasSegment("news") {
		t.Error("HasSegment wrong")
	}
}

func TestCapCountWindows(t *testing.T) {
	const day = 86400
	now := int64(1_700_000_123)
	ws := WindowStart(now, day)
	if ws%day != 0 || ws > now || now-ws >= day {
		t.Fatalf("WindowStart(%d, day) = %d", now, ws)
	}
	p := Profile{Caps: []Cap{
		{CampaignID: "c1", Count: 3, WindowStart: ws},
		{CampaignID: "c1", Count: 9, WindowStart: ws - day}, // yesterday's window
		{CampaignID: "c2", Count: 1, WindowStart: WindowStart(now, 3600)},
	}}
	cases := []struct {
		id     string
		period uint32
		now    int64
		want   uint32
	}{
		{"c1", day, now, 3},
		{"c1", day, ws + day - 1, 3}, // last second of the window
		{"c1", day, ws + day, 0},     // window expired
		{"c1", day, ws - 1, 9},       // inside yesterday's window
		{"c2", 3600, now, 1},         // other campaign, other period
		{"c2", 3600, now + 3600, 0},  // next hour
		{"c3", day, now, 0},          // unknown campaign
		{"c1", 0, now, 0},            // zero period is never a hit
		{"c1", 3600, now, 0},         // same campaign, different period
	}
	for _, c := range cases {
		if got := p.CapCount(c.id, c.period, c.now); got != c.want {
			t.Errorf("CapCount(%s, %d, %d) = %d, want %d", c.id, c.period, c.now, got, c.want)
		}
	}
	if got := WindowStart(-1, 10); got != -10 {
		t.Errorf("WindowStart(-1, 10) = %d, want -10", got)
	}
}

func TestProfileResetKeepsCapacity(t *testing.T) {
	p := Profile{
		Segments:      make([]string, 3, 8),
		InstalledApps: make([]uint64, 3, 8),
		Caps:          make([]Cap, 2, 8),
	}
	p.Reset()
	if len(p.Segments)+len(p.InstalledApps)+len(p.Caps) != 0 {
		t.Fatal("Reset left elements")
	}
	if cap(p.Segments) != 8 || cap(p.InstalledApps) != 8 || cap(p.Caps) != 8 {
		t.Fatal("Reset dropped capacity")
	}
}

func TestNoneStore(t *testing.T) {
	s, err := Open("none")
	if err != nil {
		t.Fatal(err)
	}
	p := Profile{Segments: []string{"stale"}}
	if err := s.Get(context.Background(), "d", &p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
	if len(p.Segments) != 0 {
		t.Fatal("Get did not reset dst")
	}
	if err := s.IncrementCap(context.Background(), "d", "c", 60, 1); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Gets != 1 || st.Misses != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if s.Name() != "none" || s.Close() != nil {
		t.Fatal("Name/Close")
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.Get(context.Background(), "d", &p) }); n != 0 {
		t.Fatalf("none Get allocates %v times", n)
	}
}

func TestOpenSpecs(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "profiles.jsonl")
	if err := os.WriteFile(good, []byte(`{"device":"d1","segments":["a"]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open("file:" + good)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "file:"+good {
		t.Fatalf("name = %q", s.Name())
	}
	s.Close()

	bad := []struct{ spec, want string }{
		{"", "empty store spec"},
		{"redis://x:1/a/b", "unknown store spec"},
		{"File:/x", "unknown store spec"},
		{"file:", "empty file path"},
		{"file:" + filepath.Join(dir, "missing.jsonl"), "no such file"},
		{"aerospike://", "no hosts"},
		{"aerospike:///test/set", "no hosts"},
		{"aerospike://localhost/test/set", `host "localhost": want HOST:PORT`},
		{"aerospike://h:0/test/set", "port must be 1-65535"},
		{"aerospike://h:70000/test/set", "port must be 1-65535"},
		{"aerospike://h:3000,:3000/test/set", "empty host name"},
		{"aerospike://h:3000", "need /NAMESPACE/SET"},
		{"aerospike://h:3000/test", "need /NAMESPACE/SET"},
		{"aerospike://h:3000/test/", "need /NAMESPACE/SET"},
		{"aerospike://h:3000/test/set/extra", "need /NAMESPACE/SET"},
		{"aerospike://h:3000/" + strings.Repeat("n", 32) + "/set", "longer than 31"},
		{"aerospike://h:3000/test/set?bogus=1", `unknown option "bogus"`},
		{"aerospike://h:3000/test/set?timeout=fast", "option timeout"},
		{"aerospike://h:3000/test/set?timeout=-1ms", "positive duration"},
		{"aerospike://h:3000/test/set?ttl=-2h", "option ttl"},
		{"aerospike://h:3000/test/set?max_conns=0", "option max_conns"},
	}
	for _, c := range bad {
		st, err := Open(c.spec)
		if st != nil {
			t.Errorf("Open(%q) returned a non-nil store with error %v", c.spec, err)
		}
		if err == nil {
			t.Errorf("Open(%q) succeeded", c.spec)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want it to mention %q", c.spec, err, c.want)
		}
	}
}

func TestParseAerospikeSpec(t *testing.T) {
	cfg, err := ParseAerospikeSpec("aerospike://10.0.0.1:3000,[::1]:3100,db.local:3000/prod/profiles?timeout=2ms&write_timeout=50ms&connect_timeout=3s&ttl=720h&min_conns=4&max_conns=64")
	if err != nil {
		t.Fatal(err)
	}
	want := AerospikeConfig{
		Hosts:          []string{"10.0.0.1:3000", "[::1]:3100", "db.local:3000"},
		Namespace:      "prod",
		Set:            "profiles",
		ReadTimeout:    2 * time.Millisecond,
		WriteTimeout:   50 * time.Millisecond,
		ConnectTimeout: 3 * time.Second,
		TTL:            720 * time.Hour,
		MinConns:       4,
		MaxConns:       64,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("cfg = %+v\nwant %+v", cfg, want)
	}
	cfg, err = ParseAerospikeSpec("aerospike://h:3000/test/set?ttl=-1")
	if err != nil || cfg.TTL != TTLNever {
		t.Fatalf("ttl=-1: %+v %v", cfg, err)
	}
}

func TestCheckCapArgs(t *testing.T) {
	for _, c := range []struct {
		device, campaign string
		period           uint32
		now              int64
	}{
		{"", "c", 60, 1},
		{"d", "", 60, 1},
		{"d", "a:b", 60, 1},
		{"d", "c", 0, 1},
		{"d", "c", 60, -5},
	} {
		if err := checkCapArgs(c.device, c.campaign, c.period, c.now); !errors.Is(err, ErrInvalid) {
			t.Errorf("checkCapArgs(%+v) = %v, want ErrInvalid", c, err)
		}
	}
}
