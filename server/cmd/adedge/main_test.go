package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/internal/aerotest"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/internal/schedstat"
	"github.com/adedge/adedge/tools/gen"
)

// snapDir holds one small snapshot, built once per test binary; every edge
// started here serves from it (read only).
var (
	snapOnce sync.Once
	snapDir  string
	snapErr  error
	tmpRoot  string
)

func TestMain(m *testing.M) {
	cliflag.RunAsMainIf("adedge", main) // the test binary re-run as adedge (flags_test.go)
	var err error
	tmpRoot, err = os.MkdirTemp("", "adedge-main-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

func snapshotDir(t *testing.T) string {
	t.Helper()
	snapOnce.Do(func() {
		inv := filepath.Join(tmpRoot, "inv")
		if _, snapErr = gen.Generate(inv, gen.Scales["small"], 5, nil); snapErr != nil {
			return
		}
		snapDir = filepath.Join(tmpRoot, "snaps")
		_, snapErr = builder.Build(builder.Options{Input: inv, Out: snapDir, Created: time.Now().Add(-time.Hour)})
	})
	if snapErr != nil {
		t.Fatal(snapErr)
	}
	return snapDir
}

// edgeProc is a running run(): the real adedge wiring on 127.0.0.1.
type edgeProc struct {
	addr, admin string
	stop        context.CancelFunc
	done        chan error
}

// startEdge runs the edge with flags on ephemeral loopback ports and stops
// it (the SIGTERM drain) when the test ends.
func startEdge(t *testing.T, flags ...string) *edgeProc {
	t.Helper()
	args := append([]string{"--snapshot-dir", snapshotDir(t), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--shutdown-timeout", "5s", "--drain-grace", "0"}, flags...)
	cfg, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &edgeProc{stop: cancel, done: make(chan error, 1)}
	ready := make(chan [2]string, 1)
	go func() {
		p.done <- run(ctx, cfg, func(serving, admin net.Addr) { ready <- [2]string{serving.String(), admin.String()} })
	}()
	select {
	case a := <-ready:
		p.addr, p.admin = a[0], a[1]
	case err := <-p.done:
		t.Fatalf("run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("edge did not start in 20s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("edge did not stop in 15s")
		}
	})
	return p
}

// eachLoop runs test once per --serve-loop, as subtests named after it.
func eachLoop(t *testing.T, test func(t *testing.T, loop []string)) {
	for _, l := range []string{"goroutines", "events"} {
		t.Run(l, func(t *testing.T) { test(t, []string{"--serve-loop", l}) })
	}
}

// client returns an HTTP client for a normal, well-behaved caller.
func client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
}

// probe GETs path and returns the status and how long it took.
func probe(c *http.Client, base, path string) (int, time.Duration, error) {
	start := time.Now()
	res, err := c.Get("http://" + base + path)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, time.Since(start), nil
}

// served checks that a normal client gets /health answered promptly, n
// times, and returns the slowest answer. Each answer's time is less what
// this process's threads (the edge runs in it, beside the client) waited
// for a core meanwhile: load 48 once stretched one to 3 s. An edge that
// blocks (slowloris holding its workers, idle connections it walks) is
// not waiting for a core and still fails.
func served(t *testing.T, c *http.Client, addr string, n int, limit time.Duration) time.Duration {
	t.Helper()
	var worst time.Duration
	for i := 0; i < n; i++ {
		w0 := schedstat.Self()
		code, el, err := probe(c, addr, "/health")
		if err != nil || code != 200 {
			t.Fatalf("normal client: %d %v", code, err)
		}
		worst = max(worst, el-(schedstat.Self()-w0))
	}
	if worst > limit {
		t.Errorf("normal client: slowest answer %v, want < %v", worst, limit)
	}
	return worst
}

// readStatus reads an HTTP/1.1 status code from r ("" when the connection
// closed before a status line).
func readStatus(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", fmt.Errorf("bad status line %q", line)
	}
	return f[1], nil
}

// TestOversizedHeadersAndBody: 10 KB of junk headers (over the 8 KiB read
// buffer) gets a 431 and a closed connection; a body over the server's
// 16 KiB bound gets a JSON 413. A normal client is served meanwhile.
func TestOversizedHeadersAndBody(t *testing.T) { eachLoop(t, testOversizedHeadersAndBody) }

func testOversizedHeadersAndBody(t *testing.T, loop []string) {
	p := startEdge(t, loop...)
	c := client()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var normal atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 1000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if code, _, err := probe(c, p.addr, "/health"); err != nil || code != 200 {
				t.Errorf("normal client during the junk: %d %v", code, err)
				return
			}
			normal.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()

	for round := 0; round < 5; round++ {
		conn, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		var req bytes.Buffer
		req.WriteString("GET /v1/ad?placement=x&country=US&os=ios HTTP/1.1\r\nHost: edge\r\n")
		for i := 0; req.Len() < 10<<10; i++ {
			fmt.Fprintf(&req, "X-Junk-%d: %s\r\n", i, strings.Repeat("j", 90))
		}
		req.WriteString("\r\n")
		_, werr := conn.Write(req.Bytes()) // may fail once the server has answered and closed
		br := bufio.NewReader(conn)
		code, rerr := readStatus(br)
		switch {
		case code == "431":
			res, err := io.ReadAll(br)
			if err != nil && !isReset(err) {
				t.Errorf("after the 431: %v (the connection should close)", err)
			}
			if round == 0 {
				t.Logf("junk headers: 431, then closed; response %q", res)
			}
		case rerr != nil && (rerr == io.EOF || isReset(rerr)):
			t.Logf("junk headers: connection closed without an answer (write err %v)", werr)
		default:
			t.Errorf("junk headers: status %q err %v, want 431 or a closed connection", code, rerr)
		}
		conn.Close()
	}

	// A body over MaxRequestBodySize: refused before the handler, in JSON.
	body := `{"placement":"x","country":"US","os":"ios"}` + strings.Repeat(" ", maxRequestBodySize)
	res, err := c.Post("http://"+p.addr+"/v1/ad", "application/json", strings.NewReader(body))
	if err != nil {
		t.Logf("body over %d bytes: %v (connection closed while sending)", maxRequestBodySize, err)
	} else {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 413 || !bytes.Contains(b, []byte(`"field":"body"`)) || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("body over %d bytes: %d %s %q", maxRequestBodySize, res.StatusCode, res.Header.Get("Content-Type"), b)
		}
	}
	close(stop)
	wg.Wait()
	if normal.Load() == 0 {
		t.Error("the normal client never got an answer")
	}
	served(t, c, p.addr, 5, time.Second)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestSlowloris: a client dribbling a header byte every 100 ms is cut at
// ReadTimeout, and other clients are served promptly all the while.
func TestSlowloris(t *testing.T) { eachLoop(t, testSlowloris) }

func testSlowloris(t *testing.T, loop []string) {
	const readTimeout = 500 * time.Millisecond
	p := startEdge(t, append(loop, "--read-timeout", readTimeout.String())...)
	c := client()

	const slow = 4
	type cut struct {
		after  time.Duration
		status string
		err    error
	}
	cuts := make(chan cut, slow)
	for i := 0; i < slow; i++ {
		go func() {
			conn, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
			if err != nil {
				cuts <- cut{err: err}
				return
			}
			defer conn.Close()
			start := time.Now()
			got := make(chan cut, 1)
			go func() {
				status, err := readStatus(bufio.NewReader(conn))
				got <- cut{after: time.Since(start), status: status, err: err}
			}()
			msg := []byte("GET /health HTTP/1.1\r\nHost: edge\r\nX-Slow: " + strings.Repeat("s", 100))
			for j := 0; j < len(msg); j++ { // at most 14 s
				if _, err := conn.Write(msg[j : j+1]); err != nil {
					break
				}
				select {
				case r := <-got:
					cuts <- r
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			select {
			case r := <-got:
				cuts <- r
			case <-time.After(5 * time.Second):
				cuts <- cut{after: time.Since(start), err: fmt.Errorf("never cut")}
			}
		}()
	}
	// Meanwhile: a normal client, every 50 ms.
	deadline := time.Now().Add(3 * readTimeout)
	var worst time.Duration
	n := 0
	for time.Now().Before(deadline) {
		code, el, err := probe(c, p.addr, "/health")
		if err != nil || code != 200 {
			t.Fatalf("normal client during slowloris: %d %v", code, err)
		}
		worst = max(worst, el)
		n++
		time.Sleep(50 * time.Millisecond)
	}
	if worst > 500*time.Millisecond {
		t.Errorf("normal client: slowest of %d answers %v while slow clients were connected", n, worst)
	}
	for i := 0; i < slow; i++ {
		r := <-cuts
		if r.err != nil && r.err != io.EOF && !isReset(r.err) {
			t.Errorf("slow client %d: %v", i, r.err)
			continue
		}
		if r.after < readTimeout-50*time.Millisecond || r.after > readTimeout+time.Second {
			t.Errorf("slow client %d cut after %v, want about the %v ReadTimeout", i, r.after, readTimeout)
		}
		if r.status != "" && r.status != "408" {
			t.Errorf("slow client %d got status %s, want 408 or a plain close", i, r.status)
		}
		if i == 0 {
			t.Logf("slow client cut after %v (status %q); normal client's slowest of %d: %v", r.after, r.status, n, worst)
		}
	}
}

// TestManyIdleConnections: 10,000 idle connections do not slow a normal
// client, and each of them is still a working connection. The idle
// clients live in a child process (this test binary, re-executed as
// TestIdleClientsHelper) so each side needs only 10,000 descriptors.
func TestManyIdleConnections(t *testing.T) {
	if raceEnabled {
		t.Skip("10k connections under the race detector measure the detector; make test runs this without -race")
	}
	eachLoop(t, testManyIdleConnections)
}

func testManyIdleConnections(t *testing.T, loop []string) {
	const conns = 10_000
	need := uint64(conns + 1000)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skipf("RLIMIT_NOFILE: %v", err)
	}
	if old.Cur < need {
		lim := syscall.Rlimit{Cur: need, Max: max(old.Max, need)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("need RLIMIT_NOFILE >= %d to hold %d connections, have %d/%d and cannot raise it: %v",
				need, conns, old.Cur, old.Max, err)
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	p := startEdge(t, append(loop, "--read-timeout", "30s", "--idle-timeout", "60s")...)
	c := client()
	base := served(t, c, p.addr, 20, time.Second)

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ADEDGE_IDLE_HELPER_ADDR="+p.addr, fmt.Sprintf("ADEDGE_IDLE_HELPER_CONNS=%d", conns))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close() // the helper closes its connections and exits
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "helper: "); ok {
				lines <- l
			}
		}
		close(lines)
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("helper exited before %s", what)
			}
			return l
		case <-time.After(60 * time.Second):
			t.Fatalf("helper: no %s within 60s", what)
		}
		return ""
	}
	if l := next("its connections"); l != fmt.Sprintf("open %d", conns) {
		t.Fatalf("helper: %s", l)
	}
	t.Logf("%d idle connections open after %v", conns, time.Since(start).Round(time.Millisecond))

	// A normal client, with all of them open.
	worst := served(t, c, p.addr, 50, 500*time.Millisecond)
	t.Logf("normal client: slowest answer %v before, %v with %d idle connections", base, worst, conns)

	// The idle connections were accepted and are served when they speak.
	if _, err := io.WriteString(stdin, "probe\n"); err != nil {
		t.Fatal(err)
	}
	if l := next("probe result"); l != "probe ok" {
		t.Fatalf("helper: %s", l)
	}
}

// TestIdleClientsHelper is TestManyIdleConnections' child process: it
// opens ADEDGE_IDLE_HELPER_CONNS connections to ADEDGE_IDLE_HELPER_ADDR,
// holds them idle, makes 100 of them send a request on "probe", and closes
// them all when stdin ends (at most after 2 minutes).
func TestIdleClientsHelper(t *testing.T) {
	addr := os.Getenv("ADEDGE_IDLE_HELPER_ADDR")
	if addr == "" {
		t.Skip("only run as TestManyIdleConnections' child process")
	}
	var n int
	fmt.Sscan(os.Getenv("ADEDGE_IDLE_HELPER_CONNS"), &n)
	open := make([]net.Conn, n)
	defer func() {
		for _, c := range open {
			if c != nil {
				c.Close()
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	const dialers = 16
	for d := 0; d < dialers; d++ {
		wg.Add(1)
		go func(d int) {
			defer wg.Done()
			for i := d; i < n && firstErr.Load() == nil; i += dialers {
				if time.Since(start) > 30*time.Second {
					firstErr.CompareAndSwap(nil, fmt.Errorf("dialing took over 30s (%d done)", i))
					return
				}
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				open[i] = conn
			}
		}(d)
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		fmt.Printf("helper: dial error: %v\n", err)
		return
	}
	fmt.Printf("helper: open %d\n", n)
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds)
	}()
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok {
				return
			}
			if cmd == "probe" {
				fmt.Printf("helper: %s\n", probeIdle(open))
			}
		case <-time.After(2 * time.Minute):
			return
		}
	}
}

// probeIdle sends a request on 100 of the connections, spread evenly.
func probeIdle(open []net.Conn) string {
	for i := 0; i < len(open); i += max(1, len(open)/100) {
		conn := open[i]
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("GET /health HTTP/1.1\r\nHost: edge\r\n\r\n")); err != nil {
			return fmt.Sprintf("probe fail: connection %d: %v", i, err)
		}
		if code, err := readStatus(bufio.NewReader(conn)); code != "200" {
			return fmt.Sprintf("probe fail: connection %d: status %q %v", i, code, err)
		}
	}
	return "probe ok"
}

// TestSIGTERMFinishesInFlight: SIGTERM while a request is in the handler
// (held up by a slow profile store) lets it finish and answer; then the
// edge stops cleanly and the port is closed.
//
// Goroutine loop only: the event loop refuses a remote store
// (TestServeLoopFlags); evloop's TestShutdownFinishesInFlight holds a
// request in flight across its Shutdown.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	aero := aerotest.New(t)
	p := startEdge(t, "--profiles", "aerospike://"+aero.Addr()+"/test/profiles", "--profile-timeout", "3s")
	c := client()
	served(t, c, p.addr, 3, time.Second)
	const delay = 800 * time.Millisecond
	aero.SetDelay(delay)

	// An idle keep-alive connection must not hold the drain up.
	idle := client()
	if code, _, err := probe(idle, p.addr, "/health"); err != nil || code != 200 {
		t.Fatalf("keep-alive client: %d %v", code, err)
	}

	type result struct {
		code    int
		el      time.Duration
		err     error
		connHdr string
	}
	got := make(chan result, 1)
	go func() {
		start := time.Now()
		res, err := c.Get("http://" + p.addr + "/v1/ad?placement=pl-0000001&country=US&os=ios&device=sigterm-device")
		if err != nil {
			got <- result{err: err, el: time.Since(start)}
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		got <- result{code: res.StatusCode, el: time.Since(start), connHdr: res.Header.Get("Connection")}
	}()
	// Wait until the request is in the handler.
	waitUntil := time.Now().Add(delay / 2)
	for {
		if inFlight(t, p.admin) >= 1 {
			break
		}
		if time.Now().After(waitUntil) {
			t.Fatal("the ad request never showed up in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sent := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || (r.code != 200 && r.code != 204) {
		t.Fatalf("in-flight request across SIGTERM: %d %v after %v", r.code, r.err, r.el)
	}
	if r.el < delay-50*time.Millisecond {
		t.Errorf("answered after %v: the profile read (%v) did not hold it in flight", r.el, delay)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v", err)
		}
		p.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5s of SIGTERM")
	}
	t.Logf("in-flight request: %d after %v (Connection: %q); stopped %v after SIGTERM", r.code, r.el.Round(time.Millisecond), r.connHdr,
		time.Since(sent).Round(time.Millisecond))
	if conn, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		conn.Close()
		t.Error("serving port still accepts connections after the drain")
	}
}

// inFlight reads adedge_in_flight_requests from the admin port.
func inFlight(t *testing.T, admin string) int {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "adedge_in_flight_requests %d", &n); err == nil {
			return n
		}
	}
	return 0
}
