// Package e2e runs the load-balancer tier for real: the adedge binary,
// HAProxy 2.6 with a configuration derived from ops/haproxy.cfg, continuous
// load through it, a SIGTERM drain, a kill -9 and an adtool drain. It also
// checks that ops/haproxy.cfg and ops/keepalived.conf pass their programs'
// own configuration checks.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/tools/gen"
)

const opsDir = "../../ops"

// need returns the path of an external program, skipping the test outside
// CI when it is missing and failing it under CI=true (.ci/run installs it).
func need(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // not on every user's PATH
		if p := filepath.Join(dir, prog); isExec(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true: .ci/run must install it)", prog)
	}
	t.Skipf("skipping: %s is not installed (Debian package %s; .ci/run installs it)", prog, prog)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func TestHAProxyConfigValid(t *testing.T) {
	haproxy := need(t, "haproxy")
	out, err := exec.Command(haproxy, "-c", "-f", filepath.Join(opsDir, "haproxy.cfg")).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Configuration file is valid")) {
		t.Fatalf("haproxy -c -f ops/haproxy.cfg: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("[WARNING]")) {
		t.Errorf("haproxy -c warns about ops/haproxy.cfg:\n%s", out)
	}
	// The check can fail: a typo in a copy is refused.
	bad := filepath.Join(t.TempDir(), "bad.cfg")
	src, _ := os.ReadFile(filepath.Join(opsDir, "haproxy.cfg"))
	if err := os.WriteFile(bad, bytes.Replace(src, []byte("balance leastconn"), []byte("balance leastconnn"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", bad).CombinedOutput(); err == nil {
		t.Errorf("haproxy -c accepted a broken config:\n%s", out)
	}
}

func TestKeepalivedConfigValid(t *testing.T) {
	keepalived := need(t, "keepalived")
	out, err := exec.Command(keepalived, "-t", "-f", filepath.Join(opsDir, "keepalived.conf")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("keepalived -t -f ops/keepalived.conf: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	src, _ := os.ReadFile(filepath.Join(opsDir, "keepalived.conf"))
	if err := os.WriteFile(bad, bytes.Replace(src, []byte("lb_kind DR"), []byte("lb_kind DRR"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(keepalived, "-t", "-f", bad).CombinedOutput(); err == nil {
		t.Errorf("keepalived -t accepted a broken config:\n%s", out)
	}
}

// ---- the running tier ----

// portFreeOn returns a TCP port free on every one of ips.
func portFreeOn(t *testing.T, ips ...string) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		var held []net.Listener
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		ln.Close()
		for _, l := range held {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on all of", ips)
	return 0
}

var (
	setupOnce sync.Once
	setupErr  error
	workDir   string // binaries (adedge, adtool) and snaps/, shared by the tests
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// setup builds the adedge and adtool binaries and a small snapshot once per
// test binary and returns the directory holding them.
func setup(t *testing.T) string {
	t.Helper()
	setupOnce.Do(func() {
		if workDir, setupErr = os.MkdirTemp("", "adedge-e2e-*"); setupErr != nil {
			return
		}
		for _, pkg := range []string{"server/cmd/adedge", "tools/cmd/adtool"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(workDir, filepath.Base(pkg)), "github.com/adedge/adedge/"+pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				setupErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
		inv := filepath.Join(workDir, "inv")
		if _, setupErr = gen.Generate(inv, gen.Scales["small"], 6, nil); setupErr != nil {
			return
		}
		_, setupErr = builder.Build(builder.Options{Input: inv, Out: filepath.Join(workDir, "snaps"), Created: time.Now().Add(-time.Hour)})
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return workDir
}

// edge is one adedge process on its own loopback address.
type edge struct {
	name, ip       string
	serve, agent   int
	admin          int
	bin, snapDir   string
	logPath        string
	cmd            *exec.Cmd
	exited         chan error
	grace, shutTmo time.Duration
	extra          []string // more adedge flags
	noAccessLog    bool     // as a default edge: no --access-log
}

func (e *edge) addr() string { return net.JoinHostPort(e.ip, strconv.Itoa(e.serve)) }

func (e *edge) adminAddr() string { return net.JoinHostPort(e.ip, strconv.Itoa(e.admin)) }

func (e *edge) start(t *testing.T) {
	t.Helper()
	e.launch(t)
	e.waitHealthy(t)
}

// launch starts the process without waiting for it to be healthy.
func (e *edge) launch(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	e.cmd = exec.Command(e.bin,
		"--snapshot-dir", e.snapDir, "--listen", e.addr(), "--admin", e.adminAddr(),
		"--agent-listen", net.JoinHostPort(e.ip, strconv.Itoa(e.agent)),
		"--drain-grace", e.grace.String(), "--shutdown-timeout", e.shutTmo.String(),
		"--public-url", "http://ads.test")
	if !e.noAccessLog {
		e.cmd.Args = append(e.cmd.Args, "--access-log", e.logPath+".access")
	}
	e.cmd.Args = append(e.cmd.Args, e.extra...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.exited = make(chan error, 1)
	cmd := e.cmd
	go func() { e.exited <- cmd.Wait(); logf.Close() }()
}

// waitHealthy waits until the edge answers /health with 200.
func (e *edge) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for {
		res, err := c.Get("http://" + e.addr() + "/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy within 20s: %v\n%s", e.name, err, tail(e.logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// deriveHAProxyConfig turns ops/haproxy.cfg into the test's: the frontend
// binds frontAddr, the backend's servers are edges, agent-port is agent, the
// stats socket is sock; process settings for a system service (chroot,
// user, daemon) and the stats page are dropped, and the log goes to
// stderr, abnormal requests only. Everything that
// decides balancing, checks, retries and timeouts is kept as written.
func deriveHAProxyConfig(t *testing.T, frontAddr, sock string, agent int, edges []*edge) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(opsDir, "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	section := ""
	servers := false
	for _, line := range strings.Split(string(src), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			section = f[0] + " " + strings.Join(f[1:], " ")
		}
		switch {
		case strings.HasPrefix(section, "listen stats"):
			continue
		case strings.HasPrefix(section, "global") && f[0] == "log":
			// To the log the test prints when it fails, and only the
			// abnormal requests (dontlog-normal below): a failed request's
			// line says who answered and why (termination state, retries).
			line = "    log stderr format raw local0 info"
		case strings.HasPrefix(section, "defaults") && f[0] == "option" && len(f) > 1 && f[1] == "httplog":
			out = append(out, line)
			line = "    option dontlog-normal"
		case strings.HasPrefix(section, "global") && (f[0] == "chroot" || f[0] == "user" || f[0] == "group" || f[0] == "daemon"):
			continue
		case strings.HasPrefix(section, "global") && f[0] == "stats" && f[1] == "socket":
			line = "    stats socket " + sock + " mode 600 level admin"
		case strings.HasPrefix(section, "global") && f[0] == "maxconn":
			line = "    maxconn 4096" // the test machine's descriptor limit
		case f[0] == "bind" && strings.HasPrefix(section, "frontend"):
			line = "    bind " + frontAddr
		case f[0] == "default-server" && strings.HasPrefix(section, "backend"):
			line = strings.Replace(line, "agent-port 8081", "agent-port "+strconv.Itoa(agent), 1)
			if !strings.Contains(line, "agent-port "+strconv.Itoa(agent)) {
				t.Fatal("ops/haproxy.cfg: the backend's default-server has no agent-port 8081")
			}
		case f[0] == "server":
			if servers {
				continue
			}
			servers = true
			for _, e := range edges {
				out = append(out, "    server "+e.name+" "+e.addr())
			}
			continue
		}
		out = append(out, line)
	}
	if !servers {
		t.Fatal("ops/haproxy.cfg: no server lines")
	}
	return strings.Join(out, "\n") + "\n"
}

// serverStat is one server's row of HAProxy's "show stat".
type serverStat struct {
	status   string
	weight   int
	total    int64  // sessions sent to it
	throttle string // slowstart's ramp in percent, "" when not ramping
}

// stats reads the backend's servers and its retry/redispatch counters.
func stats(sock string) (map[string]serverStat, map[string]int64, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, nil, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
		return nil, nil, fmt.Errorf("show stat: %q", b)
	}
	col := map[string]int{}
	for i, h := range strings.Split(strings.TrimPrefix(lines[0], "# "), ",") {
		col[h] = i
	}
	srv := map[string]serverStat{}
	backend := map[string]int64{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) < len(col)-1 || f[col["pxname"]] != "adedge" {
			continue
		}
		num := func(name string) int64 { n, _ := strconv.ParseInt(f[col[name]], 10, 64); return n }
		if f[col["svname"]] == "BACKEND" {
			backend["retries"], backend["redispatches"] = num("wretr"), num("wredis")
			continue
		}
		srv[f[col["svname"]]] = serverStat{status: f[col["status"]], weight: int(num("weight")), total: num("stot"), throttle: f[col["throttle"]]}
	}
	return srv, backend, nil
}

// inRotation: HAProxy may pick the server for a new request.
func (s serverStat) inRotation() bool { return strings.HasPrefix(s.status, "UP") && s.weight > 0 }

// fullyUp: in rotation with no failed check pending ("UP 1/2" is one
// more failure from DOWN). A phase that takes one edge out waits for
// this on the other: the promise is that a healthy edge takes the load.
func (s serverStat) fullyUp() bool { return s.status == "UP" && s.weight > 0 }

// phase counts the load's outcomes while one thing happens.
type phase struct {
	name         string
	ok, failed   atomic.Int64
	mu           sync.Mutex
	firstErrors  []string
	codesSummary map[int]int
}

func (p *phase) fail(what string, code int) {
	p.failed.Add(1)
	p.mu.Lock()
	if len(p.firstErrors) < 5 {
		p.firstErrors = append(p.firstErrors, what)
	}
	if p.codesSummary == nil {
		p.codesSummary = map[int]int{}
	}
	p.codesSummary[code]++
	p.mu.Unlock()
}

// load sends ad requests through front from workers goroutines, each
// pausing pause between requests, counting into the current phase.
type load struct {
	cur  atomic.Pointer[phase]
	stop chan struct{}
	wg   sync.WaitGroup
}

func startLoad(front string, workers int, pause time.Duration, first *phase) *load {
	l := &load{stop: make(chan struct{})}
	l.cur.Store(first)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				p := l.cur.Load()
				os := "ios"
				if i%2 == 1 {
					os = "android"
				}
				url := fmt.Sprintf("http://%s/v1/ad?placement=pl-%07d&country=US&os=%s&device=e2e-%d-%d", front, 1+(i%40), os, w, i)
				res, err := c.Get(url)
				switch {
				case err != nil:
					p.fail(err.Error(), 0)
				default:
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode == 200 || res.StatusCode == 204 {
						p.ok.Add(1)
					} else {
						p.fail("HTTP "+res.Status, res.StatusCode)
					}
				}
				time.Sleep(pause)
			}
		}()
	}
	return l
}

func (l *load) next(p *phase) *phase { return l.cur.Swap(p) }

func (l *load) close() { close(l.stop); l.wg.Wait() }

func report(t *testing.T, p *phase) {
	t.Helper()
	t.Logf("phase %-14s %6d ok, %d failed %v %v", p.name, p.ok.Load(), p.failed.Load(), p.codesSummary, p.firstErrors)
}

// waitStat polls HAProxy until cond holds for server name.
func waitStat(t *testing.T, sock, name string, within time.Duration, cond func(serverStat) bool) (serverStat, time.Duration) {
	t.Helper()
	start := time.Now()
	var last serverStat
	for time.Since(start) < within {
		srv, _, err := stats(sock)
		if err == nil {
			last = srv[name]
			if cond(last) {
				return last, time.Since(start)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("HAProxy: %s still %+v after %v", name, last, within)
	return last, 0
}

// startHAProxy runs HAProxy in the foreground on the config derived from
// ops/haproxy.cfg for edges, stops it when the test ends, and returns the
// frontend address and the stats socket.
func startHAProxy(t *testing.T, haproxy, dir string, agent int, edges []*edge) (front, sock string) {
	t.Helper()
	front = net.JoinHostPort("127.0.0.1", strconv.Itoa(portFreeOn(t, "127.0.0.1")))
	sock = filepath.Join(dir, "haproxy.sock")
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(deriveHAProxyConfig(t, front, sock, agent, edges)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("derived config: %v\n%s", err, out)
	}
	hlog := filepath.Join(dir, "haproxy.log")
	hf, _ := os.Create(hlog)
	hp := exec.Command(haproxy, "-db", "-f", cfgPath)
	hp.Stdout, hp.Stderr = hf, hf
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hp.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = hp.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = hp.Process.Kill()
		}
		hf.Close()
		if t.Failed() {
			t.Logf("haproxy log:\n%s", tail(hlog))
		}
	})
	return front, sock
}

// TestHAProxyDrainAndKill: two edges behind HAProxy under continuous load.
// A SIGTERM drain, adtool maint on/off and an adtool drain lose no
// request; after a kill -9
// HAProxy stops sending to the dead edge within its check interval and
// redispatches, and the failures (if any) are reported and bounded.
func TestHAProxyDrainAndKill(t *testing.T) {
	haproxy := need(t, "haproxy")
	if testing.Short() {
		t.Skip("skipping the HAProxy end-to-end run in -short mode")
	}
	testStart := time.Now()
	bin := setup(t)
	dir := t.TempDir()

	ips := []string{"127.0.0.2", "127.0.0.3"}
	serve, agent, admin := portFreeOn(t, ips...), portFreeOn(t, ips...), portFreeOn(t, ips...)
	const grace = 3 * time.Second
	var edges []*edge
	for i, ip := range ips {
		e := &edge{name: fmt.Sprintf("edge%d", i+1), ip: ip, serve: serve, agent: agent, admin: admin,
			bin: filepath.Join(bin, "adedge"), snapDir: filepath.Join(bin, "snaps"), logPath: filepath.Join(dir, fmt.Sprintf("edge%d.log", i+1)),
			grace: grace, shutTmo: 5 * time.Second}
		e.start(t)
		edges = append(edges, e)
		t.Cleanup(func() {
			if e.cmd != nil && e.cmd.ProcessState == nil {
				_ = e.cmd.Process.Kill()
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", e.name, tail(e.logPath))
			}
		})
	}
	a, b := edges[0], edges[1]

	front, sock := startHAProxy(t, haproxy, dir, agent, edges)
	for _, e := range edges {
		waitStat(t, sock, e.name, 10*time.Second, serverStat.inRotation)
	}

	warm := &phase{name: "warm-up"}
	ld := startLoad(front, 4, 2*time.Millisecond, warm)
	defer ld.close()
	// Both edges take traffic before anything happens.
	waitStat(t, sock, a.name, 10*time.Second, func(s serverStat) bool { return s.total > 20 })
	waitStat(t, sock, b.name, 10*time.Second, func(s serverStat) bool { return s.total > 20 })

	// 1. SIGTERM drain of edge1: zero failed requests.
	drain := &phase{name: "SIGTERM drain"}
	report(t, ld.next(drain))
	sent := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, out := waitStat(t, sock, a.name, grace, func(s serverStat) bool { return !s.inRotation() })
	t.Logf("SIGTERM: HAProxy took %s out of rotation after %v (status %q, weight %d)", a.name, out.Round(time.Millisecond), st.status, st.weight)
	sentTo := st.total
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("%s after SIGTERM: %v", a.name, err)
		}
	case <-time.After(grace + 10*time.Second):
		t.Fatalf("%s did not exit after SIGTERM", a.name)
	}
	exitAfter := time.Since(sent)
	time.Sleep(500 * time.Millisecond) // requests that would have gone to the closed port
	after, _, _ := stats(sock)
	report(t, ld.next(&phase{name: "restart"}))
	t.Logf("SIGTERM: %s exited %v after the signal (grace %v); sessions sent to it after it left rotation: %d",
		a.name, exitAfter.Round(time.Millisecond), grace, after[a.name].total-sentTo)
	if n := drain.failed.Load(); n != 0 {
		t.Errorf("SIGTERM drain: %d failed requests, want 0", n)
	}
	if drain.ok.Load() < 100 {
		t.Errorf("SIGTERM drain: only %d requests served: the load did not run", drain.ok.Load())
	}
	if exitAfter < grace {
		t.Errorf("edge exited %v after SIGTERM, before its %v grace", exitAfter, grace)
	}
	if after[a.name].total != sentTo {
		t.Errorf("HAProxy sent %d sessions to %s after taking it out", after[a.name].total-sentTo, a.name)
	}

	// Restart edge1; it comes back (agent "ready" clears the drain).
	a.start(t)
	waitStat(t, sock, a.name, 10*time.Second, serverStat.inRotation)

	// 2. kill -9 edge2: out within the check interval, failures bounded.
	kill := &phase{name: "kill -9"}
	report(t, ld.next(kill))
	_, before, _ := stats(sock)
	killed := time.Now()
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	st, _ = waitStat(t, sock, b.name, 5*time.Second, func(s serverStat) bool { return !s.inRotation() })
	out = time.Since(killed)
	downAt := st.total
	time.Sleep(time.Second)
	after, afterB, _ := stats(sock)
	report(t, ld.next(&phase{name: "restart"}))
	killFailed, killOK := kill.failed.Load(), kill.ok.Load()
	t.Logf("kill -9: HAProxy marked %s %q after %v; %d failed of %d requests; backend retries +%d, redispatches +%d; sessions to it after: %d",
		b.name, st.status, out.Round(time.Millisecond), killFailed, killFailed+killOK,
		afterB["retries"]-before["retries"], afterB["redispatches"]-before["redispatches"], after[b.name].total-downAt)
	// inter 1s + fall 2 x fastinter 250ms, plus one check's timeout.
	if limit := 2 * time.Second; out > limit {
		t.Errorf("kill -9: out of rotation after %v, want within %v (the check interval)", out, limit)
	}
	if after[b.name].total != downAt {
		t.Errorf("HAProxy sent %d sessions to the dead %s after marking it down", after[b.name].total-downAt, b.name)
	}
	if killFailed > 10 {
		t.Errorf("kill -9: %d failed requests; retries and redispatch should hide nearly all", killFailed)
	}

	// 3. adtool maint on edge1 while edge2 is back: out of rotation, no
	// failures, and back in after maint off (the agent's "ready").
	b.start(t)
	waitStat(t, sock, b.name, 10*time.Second, serverStat.inRotation)
	st, _ = waitStat(t, sock, b.name, 10*time.Second, serverStat.fullyUp)
	t.Logf("maint on/off: %s %q weight %d throttle %q takes the load", b.name, st.status, st.weight, st.throttle)
	maint := &phase{name: "maint on/off"}
	report(t, ld.next(maint))
	adtool := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(filepath.Join(bin, "adtool"), args...).CombinedOutput(); err != nil {
			t.Fatalf("adtool %v: %v\n%s", args, err, out)
		}
	}
	adtool("maint", "--admin", a.adminAddr(), "on")
	st, out = waitStat(t, sock, a.name, 3*time.Second, func(s serverStat) bool { return !s.inRotation() })
	t.Logf("maint on: %s %q after %v", a.name, st.status, out.Round(time.Millisecond))
	parked := st.total
	// The agent's "maint" (not only the failing /health) reaches HAProxy.
	waitStat(t, sock, a.name, 3*time.Second, func(s serverStat) bool { return strings.HasPrefix(s.status, "MAINT") })
	time.Sleep(300 * time.Millisecond)
	if srv, _, _ := stats(sock); srv[a.name].total != parked {
		t.Errorf("HAProxy sent %d sessions to %s in maintenance", srv[a.name].total-parked, a.name)
	}
	adtool("maint", "--admin", a.adminAddr(), "off")
	st, out = waitStat(t, sock, a.name, 5*time.Second, serverStat.inRotation)
	t.Logf("maint off: %s %q after %v", a.name, st.status, out.Round(time.Millisecond))
	if n := maint.failed.Load(); n != 0 {
		t.Errorf("maint on/off: %d failed requests, want 0", n)
	}

	// 4. adtool drain of edge2: zero failed requests.
	st, _ = waitStat(t, sock, a.name, 10*time.Second, serverStat.fullyUp)
	t.Logf("adtool drain: %s %q weight %d throttle %q takes the load", a.name, st.status, st.weight, st.throttle)
	tool := &phase{name: "adtool drain"}
	report(t, ld.next(tool))
	adtool("drain", "--admin", b.adminAddr(), "--wait", "--timeout", "20s")
	if err := <-b.exited; err != nil {
		t.Fatalf("%s after adtool drain: %v", b.name, err)
	}
	time.Sleep(500 * time.Millisecond)
	report(t, ld.next(&phase{name: "end"}))
	if n := tool.failed.Load(); n != 0 {
		t.Errorf("adtool drain: %d failed requests, want 0", n)
	}
	srv, _, _ := stats(sock)
	if srv[b.name].inRotation() {
		t.Errorf("%s still in rotation after adtool drain: %+v", b.name, srv[b.name])
	}
	t.Logf("end to end in %v", time.Since(testStart).Round(100*time.Millisecond))
}

// TestDashboardMetrics: every series ops/grafana/adedge-dashboard.json
// queries is one a default adedge (no access log) really exports. The
// dashboard has no adbuilder panel: an adbuilder_ series would fail here
// until a builder joins the test.
func TestDashboardMetrics(t *testing.T) {
	bin := setup(t)
	raw, err := os.ReadFile(filepath.Join(opsDir, "grafana", "adedge-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string
		Panels []struct {
			ID      int
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	ip := "127.0.0.4"
	e := &edge{name: "metrics", ip: ip, serve: portFreeOn(t, ip), agent: portFreeOn(t, ip), admin: portFreeOn(t, ip),
		bin: filepath.Join(bin, "adedge"), snapDir: filepath.Join(bin, "snaps"), logPath: filepath.Join(t.TempDir(), "edge.log"),
		shutTmo: time.Second, extra: []string{"--spend", "local"},
		noAccessLog: true} // what a default edge exports (adedge_log_lines_dropped_total was missing)
	e.start(t)
	defer func() {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		<-e.exited
	}()
	res, err := http.Get("http://" + e.addr() + "/v1/ad?placement=pl-0000002&country=US&os=ios")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = http.Get("http://" + e.adminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	exported := map[string]bool{}
	for _, l := range strings.Split(string(body), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		exported[strings.FieldsFunc(l, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	series := regexp.MustCompile(`\b(?:adedge|adbuilder|go|process)_[a-z0-9_]+\b`)
	ids := map[int]bool{}
	queried := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			for _, name := range series.FindAllString(tg.Expr, -1) {
				queried++
				if !exported[name] {
					t.Errorf("panel %q queries %s, which adedge does not export", p.Title, name)
				}
			}
		}
	}
	if queried < 20 || dash.UID == "" {
		t.Fatalf("dashboard queries only %d series (uid %q)", queried, dash.UID)
	}
	t.Logf("%d panels, %d series references, all exported", len(dash.Panels), queried)
}

// TestHAProxyStartingEdge: an edge without a snapshot answers 503
// (starting) and its agent says down, so HAProxy keeps it out and sends it
// nothing; once a snapshot lands in its directory it enters by itself.
func TestHAProxyStartingEdge(t *testing.T) {
	haproxy := need(t, "haproxy")
	if testing.Short() {
		t.Skip("skipping the HAProxy end-to-end run in -short mode")
	}
	bin := setup(t)
	dir := t.TempDir()
	ip := "127.0.0.5"
	empty := filepath.Join(dir, "snaps")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &edge{name: "edge1", ip: ip, serve: portFreeOn(t, ip), agent: portFreeOn(t, ip), admin: portFreeOn(t, ip),
		bin: filepath.Join(bin, "adedge"), snapDir: empty, logPath: filepath.Join(dir, "edge.log"), shutTmo: time.Second}
	e.launch(t)
	t.Cleanup(func() {
		_ = e.cmd.Process.Kill()
		<-e.exited
		if t.Failed() {
			t.Logf("edge log:\n%s", tail(e.logPath))
		}
	})
	_, sock := startHAProxy(t, haproxy, dir, e.agent, []*edge{e})
	st, out := waitStat(t, sock, e.name, 5*time.Second, func(s serverStat) bool { return strings.HasPrefix(s.status, "DOWN") })
	t.Logf("no snapshot: HAProxy shows %q after %v", st.status, out.Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	if srv, _, _ := stats(sock); srv[e.name].inRotation() || srv[e.name].total != 0 {
		t.Fatalf("an edge without a snapshot got into rotation: %+v", srv[e.name])
	}

	// Publish the snapshot the way the builder does: write aside, rename in.
	snaps, _ := filepath.Glob(filepath.Join(bin, "snaps", "*.snap"))
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	b, err := os.ReadFile(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(empty, ".incoming.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	if err := os.Rename(tmp, filepath.Join(empty, filepath.Base(snaps[0]))); err != nil {
		t.Fatal(err)
	}
	st, _ = waitStat(t, sock, e.name, 10*time.Second, serverStat.inRotation)
	t.Logf("snapshot published: HAProxy shows %q after %v", st.status, time.Since(published).Round(time.Millisecond))
}
