package profilesload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"

	"github.com/adedge/adedge/internal/aerokit"
	"github.com/adedge/adedge/server/profiles"
)

func TestMain(m *testing.M) { os.Exit(aerokit.Main(m)) }

// realSpec is a store spec on the package's real Aerospike server, in a
// set of the test's own.
func realSpec(t *testing.T) (spec, addr, set string) {
	addr = aerokit.Shared(t)
	set = fmt.Sprintf("load_%d", time.Now().UnixNano()%1e9)
	return "aerospike://" + addr + "/" + aerokit.Namespace() + "/" + set, addr, set
}

// records counts the records in set, by scanning it.
func records(t *testing.T, addr, set string) int {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	var p int
	fmt.Sscan(port, &p)
	c, err := as.NewClientWithPolicyAndHost(nil, as.NewHost(host, p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs, err := c.ScanAll(nil, aerokit.Namespace(), set)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r := range rs.Results() {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		n++
	}
	return n
}

func writeProfiles(t *testing.T, n int, extra ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"device":"dev-%d","segments":["seg-%d","all"],"installed_apps":["com.app.%d","com.common"]}`+"\n", i, i%7, i)
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	path := filepath.Join(t.TempDir(), "profiles.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadIntoAerospike(t *testing.T) {
	spec, addr, set := realSpec(t)
	path := writeProfiles(t, 300,
		`{"device":"dup","segments":["first"]}`,
		`{"device":"dup","segments":["second"],"installed_apps":["com.x"]}`,
	)
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Load as adtool runs it, with a write timeout a real server meets on
	// a loaded 2-core machine (the default 2 s was missed while several
	// kit servers and builds shared the cores; lost writes are what this
	// test is about, not slow ones).
	written, failed, err := load(ctx, path, spec, &progress, Options{WriteTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, progress.String())
	}
	if written != 302 || failed != 0 {
		t.Fatalf("written %d failed %d, want 302 and 0", written, failed)
	}
	if !strings.Contains(progress.String(), "302 profiles") || !strings.Contains(progress.String(), "done: 302 written, 0 failed") {
		t.Fatalf("progress:\n%s", progress.String())
	}
	if got := records(t, addr, set); got != 301 {
		t.Fatalf("records = %d, want 301", got)
	}

	st, err := profiles.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var p profiles.Profile
	for _, i := range []int{0, 150, 299} {
		if err := st.Get(ctx, fmt.Sprintf("dev-%d", i), &p); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Segments, []string{fmt.Sprintf("seg-%d", i%7), "all"}) {
			t.Fatalf("dev-%d segments = %v", i, p.Segments)
		}
		if len(p.InstalledApps) != 2 || !p.HasApp(profiles.AppHash(fmt.Sprintf("com.app.%d", i))) || !p.HasApp(profiles.AppHash("com.common")) {
			t.Fatalf("dev-%d apps = %v", i, p.InstalledApps)
		}
	}
	// The same device always goes to the same worker, in file order.
	if err := st.Get(ctx, "dup", &p); err != nil || !reflect.DeepEqual(p.Segments, []string{"second"}) || !p.HasApp(profiles.AppHash("com.x")) {
		t.Fatalf("dup = %+v %v, want the last line", p, err)
	}
}

func TestLoadRefusesBadFileBeforeWriting(t *testing.T) {
	spec, addr, set := realSpec(t)
	path := writeProfiles(t, 50, `{"device":"x","segment":["typo"]}`, `{"device":""}`)
	written, failed, err := Load(context.Background(), path, spec, nil)
	var pe *profiles.ParseError
	if !errors.As(err, &pe) || pe.Total != 2 {
		t.Fatalf("err = %v, want a ParseError with 2 problems", err)
	}
	if !strings.Contains(err.Error(), path+":51: ") || !strings.Contains(err.Error(), `unknown field "segment"`) || !strings.Contains(err.Error(), path+":52: ") {
		t.Fatalf("error lacks path:line detail:\n%v", err)
	}
	if n := records(t, addr, set); written != 0 || failed != 0 || n != 0 {
		t.Fatalf("wrote %d (%d failed, %d records) from a bad file", written, failed, n)
	}
}

func TestLoadRejectsReadOnlyStores(t *testing.T) {
	path := writeProfiles(t, 1)
	for _, to := range []string{"none", "file:" + path} {
		_, _, err := Load(context.Background(), path, to, nil)
		if err == nil || !strings.Contains(err.Error(), "does not accept writes") {
			t.Errorf("Load to %s: %v", to, err)
		}
	}
	if _, _, err := Load(context.Background(), path, "aerospike://nohost", nil); err == nil {
		t.Error("bad spec accepted")
	}
	if _, _, err := Load(context.Background(), filepath.Join(t.TempDir(), "missing"), "none", nil); err == nil {
		t.Error("missing file accepted")
	}
}

// fakePutter records writes, fails for chosen devices and tracks how many
// writes run at once.
type fakePutter struct {
	mu        sync.Mutex
	got       map[string]profiles.Profile
	fail      func(device string) bool
	delay     time.Duration
	inFlight  atomic.Int32
	maxFlight atomic.Int32
}

func (f *fakePutter) PutProfile(ctx context.Context, device string, p *profiles.Profile) error {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxFlight.Load()
		if n <= m || f.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.fail != nil && f.fail(device) {
		return errors.New("boom")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		f.got = map[string]profiles.Profile{}
	}
	f.got[device] = *p
	return nil
}

func TestLoadCountsFailuresAndBoundsConcurrency(t *testing.T) {
	path := writeProfiles(t, 200)
	f := &fakePutter{
		fail:  func(d string) bool { return d == "dev-7" || d == "dev-70" },
		delay: time.Millisecond,
	}
	var progress bytes.Buffer
	written, failed, err := LoadInto(context.Background(), path, f, &progress, Options{Concurrency: 4, ProgressEvery: 20 * time.Millisecond})
	if written != 198 || failed != 2 {
		t.Fatalf("written %d failed %d, want 198 and 2", written, failed)
	}
	if err == nil || !strings.Contains(err.Error(), "2 of 200 writes failed") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	if m := f.maxFlight.Load(); m > 4 || m < 1 {
		t.Fatalf("max writes in flight = %d, want 1..4", m)
	}
	if !strings.Contains(progress.String(), "/200 written") {
		t.Fatalf("no progress lines:\n%s", progress.String())
	}
}

func TestLoadStopsAfterMaxFailures(t *testing.T) {
	path := writeProfiles(t, 2000)
	f := &fakePutter{fail: func(string) bool { return true }}
	written, failed, err := LoadInto(context.Background(), path, f, nil, Options{Concurrency: 2, MaxFailures: 5})
	if err == nil || !strings.Contains(err.Error(), "stopped after") {
		t.Fatalf("err = %v", err)
	}
	if written != 0 || failed < 5 || failed > 50 {
		t.Fatalf("written %d failed %d: did not stop early", written, failed)
	}
}

func TestLoadCancelled(t *testing.T) {
	path := writeProfiles(t, 2000)
	f := &fakePutter{delay: 5 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	written, failed, err := LoadInto(ctx, path, f, nil, Options{Concurrency: 2})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if written >= 2000 || failed != 0 {
		t.Fatalf("written %d failed %d", written, failed)
	}
}
