// Package aerokit starts a real Aerospike server for tests: the kit in
// ../shared/aerospike (a stripped Aerospike CE build with start.sh and
// stop.sh), on a free loopback port range, with a directory of the test's
// own, stopped when the test ends. Tests that need Aerospike call Addr (any
// server, AEROSPIKE_HOST first) or Start (a kit server they can stop, kill
// and restart for fault tests).
//
// A kit that is missing or a server that cannot start skips the test with
// the reason, except under CI=true, where it fails it: CI must never pass
// by skipping the real server.
package aerokit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TB is the part of TB the helpers use; taking it instead of
// TB keeps the testing package out of tools that start servers
// (adtool bench).
type TB interface {
	Helper()
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// EnvKit names the kit directory explicitly, overriding the search.
const EnvKit = "ADEDGE_AEROSPIKE_KIT"

// EnvHost is host:port of an Aerospike server to use instead of starting
// the kit (Addr honours it; Start does not, since it must own the process).
const EnvHost = "AEROSPIKE_HOST"

// EnvNamespace names the namespace to use on an EnvHost server.
const EnvNamespace = "AEROSPIKE_NAMESPACE"

// Namespaces the kit's configuration serves (memory storage).
const (
	NamespaceTest     = "test"
	NamespaceProfiles = "profiles"
)

// startTimeout bounds start.sh (it gives up after 60 s itself) on a loaded
// machine; attempts is how many port ranges are tried when another process
// takes a range between the probe and the server's bind.
const (
	startTimeout = 90 * time.Second
	attempts     = 4
)

// Ports are taken below Linux's default ephemeral range (32768-60999), so
// a client's outgoing connection cannot be holding one of them.
const (
	portLow  = 20000
	portHigh = 32000
)

// Kit returns the kit directory: $ADEDGE_AEROSPIKE_KIT, else the first
// shared/aerospike directory found walking up from the module root of the
// working directory (the repository has shared/ beside it, wherever it is
// cloned).
func Kit() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("aerokit: %w", err)
	}
	return KitFrom(wd)
}

// KitFrom is Kit searching from the module root at or above dir.
func KitFrom(dir string) (string, error) {
	if d := os.Getenv(EnvKit); d != "" {
		if err := checkKit(d); err != nil {
			return "", fmt.Errorf("aerokit: %s=%s: %w", EnvKit, d, err)
		}
		return filepath.Abs(d)
	}
	root, err := moduleRoot(dir)
	if err != nil {
		return "", err
	}
	for d := root; ; {
		cand := filepath.Join(d, "shared", "aerospike")
		if checkKit(cand) == nil {
			return cand, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", fmt.Errorf("aerokit: no shared/aerospike kit (start.sh, stop.sh, asd) in %s or any directory above it; set %s", root, EnvKit)
		}
		d = up
	}
}

func checkKit(dir string) error {
	for _, f := range []string{"start.sh", "stop.sh", "asd"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", filepath.Join(dir, f))
		}
	}
	return nil
}

// moduleRoot is the nearest directory at or above wd holding go.mod (go
// test runs in the package's directory).
func moduleRoot(wd string) (string, error) {
	wd, err := filepath.Abs(wd)
	if err != nil {
		return "", fmt.Errorf("aerokit: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", fmt.Errorf("aerokit: no go.mod at or above %s", wd)
		}
		d = up
	}
}

// unavailable skips t with the reason, or fails it under CI=true.
func unavailable(t TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("aerokit: real Aerospike server required under CI=true: %s", msg)
		return
	}
	t.Skipf("aerokit: skipping, no real Aerospike server: %s", msg)
}

// Addr returns host:port of a real server for t: $AEROSPIKE_HOST when set,
// else a kit server started for t (see Start). Namespace says which
// namespace to use on it.
func Addr(t TB) string {
	t.Helper()
	if h := os.Getenv(EnvHost); h != "" {
		return h
	}
	return Start(t).Addr()
}

// Namespace is $AEROSPIKE_NAMESPACE when AEROSPIKE_HOST is set (default
// "test"), else the kit's "test" namespace.
func Namespace() string {
	if os.Getenv(EnvHost) != "" {
		if ns := os.Getenv(EnvNamespace); ns != "" {
			return ns
		}
	}
	return NamespaceTest
}

// Server is one kit server: a single-node cluster on 127.0.0.1, service
// port Port, fabric, heartbeat and info on the three ports after it.
type Server struct {
	kit  string
	dir  string
	port int
	cpus string
	fifo int

	mu      sync.Mutex
	running bool
	guard   *watchdog // while running (orphans.go)
	noGuard bool      // tests of the reaper only
}

// Start starts a kit server for t on a free port range with a temporary
// directory of its own and stops it when t ends (its log is printed if t
// failed). A missing kit or a server that cannot start skips t, or fails
// it under CI=true.
func Start(t TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options (Persist: a server whose namespace
// test survives Kill and Restart).
func StartWith(t TB, o Options) *Server {
	t.Helper()
	s, err := startWith(o)
	if err != nil {
		unavailable(t, "%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("aerokit: last lines of %s:\n%s", s.LogPath(), s.LogTail(30))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("aerokit: %v", err)
		}
		os.RemoveAll(s.dir)
	})
	return s
}

// Options are StartServer's choices; zero values are the defaults.
type Options struct {
	// Kit is the kit directory; empty means Kit().
	Kit string
	// CPUs, when set, pins the server to these CPUs (taskset -c CPUS), as
	// the benchmark suite does to keep it off the edge's core.
	CPUs string
	// FIFO, when > 0, runs the server at SCHED_FIFO with this priority
	// (chrt -f FIFO; root). The benchmark suite puts it above its load
	// generator on their shared CPU: below it, the generator's wake-ups
	// delayed reads past the edge's 1 ms deadline (docs/BENCHMARKS.md,
	// "The store above the generator").
	FIFO int
	// Persist keeps namespace test on a file in the server's directory
	// (storage-engine device) instead of memory, so its records survive
	// Kill and Restart: a node that crashes and comes back with its data.
	// The write buffer is flushed every PersistFlush; an add acknowledged
	// less than that before a Kill can still be lost (CE has no
	// commit-to-device).
	Persist bool

	noGuard bool // no watchdog: the reaper's test makes an orphan
}

// StartServer starts a kit server outside a test (benchmarks, TestMain,
// tools); the caller stops it and removes Dir.
func StartServer(o Options) (*Server, error) { return startWith(o) }

func start() (*Server, error) { return startWith(Options{}) }

// PersistFlush is how often a Persist server writes its buffered records
// to the file (flush-max-ms): wait longer than this after the last
// acknowledged write before a Kill that must not lose it.
const PersistFlush = 10 * time.Millisecond

// memoryTest is the kit configuration's namespace test, which Persist
// replaces.
const memoryTest = `namespace test {
	replication-factor 1
	nsup-period 10
	storage-engine memory {
		data-size 1G
	}
}`

// persistentKit makes dir/kit: the kit's programs (symlinks; start.sh
// finds asd and the configuration beside itself) with namespace test on
// a file under the server's work directory.
func persistentKit(kit, dir string) (string, error) {
	conf, err := os.ReadFile(filepath.Join(kit, "aerospike.conf.in"))
	if err != nil {
		return "", err
	}
	if !strings.Contains(string(conf), memoryTest) {
		return "", fmt.Errorf("aerokit: %s: namespace test is not the memory one Persist replaces", filepath.Join(kit, "aerospike.conf.in"))
	}
	file := fmt.Sprintf(`namespace test {
	replication-factor 1
	nsup-period 10
	storage-engine device {
		file @DIR@/work/test.dat
		filesize 256M
		flush-max-ms %d
	}
}`, PersistFlush.Milliseconds())
	pk := filepath.Join(dir, "kit")
	if err := os.MkdirAll(pk, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"asd", "start.sh", "stop.sh"} {
		if err := os.Symlink(filepath.Join(kit, f), filepath.Join(pk, f)); err != nil {
			return "", err
		}
	}
	conf = []byte(strings.Replace(string(conf), memoryTest, file, 1))
	if err := os.WriteFile(filepath.Join(pk, "aerospike.conf.in"), conf, 0o644); err != nil {
		return "", err
	}
	return pk, nil
}

func startWith(o Options) (*Server, error) {
	kit := o.Kit
	if kit == "" {
		var err error
		if kit, err = Kit(); err != nil {
			return nil, err
		}
	}
	reapOrphans(os.TempDir())
	dir, err := os.MkdirTemp("", "aerokit-")
	if err != nil {
		return nil, fmt.Errorf("aerokit: %w", err)
	}
	if err := writeOwner(dir); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("aerokit: owner file: %w", err)
	}
	if o.Persist {
		if kit, err = persistentKit(kit, dir); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("aerokit: persistent kit: %w", err)
		}
	}
	var last error
	for i := 0; i < attempts; i++ {
		port, err := freeRange()
		if err != nil {
			last = err
			continue
		}
		s := &Server{kit: kit, dir: dir, port: port, cpus: o.CPUs, fifo: o.FIFO, noGuard: o.noGuard}
		if last = s.Restart(); last == nil {
			return s, nil
		}
		if !strings.Contains(last.Error(), "exited during start-up") {
			break // not a port clash: another range will not help
		}
	}
	os.RemoveAll(dir)
	return nil, last
}

// freeRange returns a port p with p..p+3 free on 127.0.0.1 now.
func freeRange() (int, error) {
	for i := 0; i < 200; i++ {
		p := portLow + 4*rand.IntN((portHigh-portLow)/4)
		ok := true
		var ls []net.Listener
		for j := 0; j < 4 && ok; j++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+j)))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("aerokit: no free range of 4 ports on 127.0.0.1")
}

// Addr is the service address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Host is the service host, for clients that take host and port apart.
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the service port.
func (s *Server) Port() int { return s.port }

// Dir is the server's own directory (config, log, pid file).
func (s *Server) Dir() string { return s.dir }

// LogPath is the server's log file.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "aerospike.log") }

// Running reports whether the server was started and not since stopped
// or killed through s.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Restart starts the server again (after Stop or Kill) on the same ports
// and directory; it returns once clients can use it. Memory namespaces
// come back empty. Starting a running server is a no-op.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	argv := []string{filepath.Join(s.kit, "start.sh"), s.dir, strconv.Itoa(s.port)}
	if s.cpus != "" {
		argv = append([]string{"taskset", "-c", s.cpus}, argv...)
	}
	if s.fifo > 0 {
		argv = append([]string{"chrt", "-f", strconv.Itoa(s.fifo)}, argv...)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("aerokit: %s %s %d: %v: %s", filepath.Join(s.kit, "start.sh"), s.dir, s.port, err, strings.TrimSpace(string(out)))
	}
	// start.sh checks the port, and another process's server on it would
	// pass that check: the ready server must be ours.
	pid, err := s.pid()
	if err != nil || !alive(pid) {
		return fmt.Errorf("aerokit: asd exited during start-up on port %d (another server on the range?): %s", s.port, s.logTail(10))
	}
	if !s.noGuard {
		if err := s.watch(pid); err != nil {
			_, _ = exec.Command(filepath.Join(s.kit, "stop.sh"), s.dir).CombinedOutput()
			return err
		}
	}
	s.running = true
	return nil
}

// Stop stops the server with SIGTERM (stop.sh) and waits for it to exit.
// Stopping a stopped server is a no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	pid, _ := s.pid()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(s.kit, "stop.sh"), s.dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("aerokit: stop.sh %s: %v: %s", s.dir, err, strings.TrimSpace(string(out)))
	}
	s.running = false
	if pid > 0 {
		if err := waitGone(pid, s.port); err != nil {
			return err
		}
	}
	s.unwatch()
	return nil
}

// Kill kills the server with SIGKILL (no shutdown at all, as a crashed or
// powered-off node) and waits until its port refuses connections.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	pid, err := s.pid()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("aerokit: kill %d: %w", pid, err)
	}
	s.running = false
	os.Remove(filepath.Join(s.dir, "asd.pid"))
	if err := waitGone(pid, s.port); err != nil {
		return err
	}
	s.unwatch()
	return nil
}

// Pause stops the server's process (SIGSTOP): connections stay open and
// requests are accepted by the kernel but never answered, as a hung node.
// It returns once every thread is stopped (a loaded machine delivers the
// stop late, and a thread still running would answer). Resume continues it.
func (s *Server) Pause() error {
	if err := s.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	pid, err := s.Pid()
	if err != nil {
		return err
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if allStopped(pid) {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("aerokit: asd pid %d not stopped 10s after SIGSTOP", pid)
		}
	}
}

// allStopped reports whether every thread of pid is in state T.
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			return false
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// WaitPersisted waits until what was acknowledged before the call is in
// a Persist server's file, so a Kill after it loses nothing. The server
// writes a dirty buffer within one flush interval (PersistFlush), which
// moves storage-engine.file[0] writes or partial_writes; WaitPersisted
// returns once that count has stood still for 20 intervals (nothing
// dirty was left to write). The caller makes no writes meanwhile.
// Bounded by timeout.
func (s *Server) WaitPersisted(timeout time.Duration) error {
	flushes := func() (int64, error) {
		var n int64
		for _, f := range []string{"storage-engine.file[0].writes", "storage-engine.file[0].partial_writes"} {
			v, err := s.Stat("namespace/"+NamespaceTest, f)
			if err != nil {
				return 0, err
			}
			k, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("aerokit: %s = %q", f, v)
			}
			n += k
		}
		return n, nil
	}
	last, err := flushes()
	if err != nil {
		return fmt.Errorf("aerokit: not a Persist server? %w", err)
	}
	start := time.Now()
	for changed := start; time.Since(changed) < 20*PersistFlush; {
		if time.Since(start) > timeout {
			return fmt.Errorf("aerokit: the file was still being written after %v", timeout)
		}
		time.Sleep(PersistFlush)
		c, err := flushes()
		if err != nil {
			return err
		}
		if c != last {
			last, changed = c, time.Now()
		}
	}
	return nil
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, err := s.pid()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("aerokit: signal %v to %d: %w", sig, pid, err)
	}
	return nil
}

// Pid is the server process's id, from its pid file.
func (s *Server) Pid() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid()
}

func (s *Server) pid() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "asd.pid"))
	if err != nil {
		return 0, fmt.Errorf("aerokit: server not running: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("aerokit: bad pid file %q", b)
	}
	return pid, nil
}

// waitGone waits until pid has exited (or is a zombie nobody reaps: the
// kit's servers are not our children) and port refuses connections.
func waitGone(pid, port int) error {
	deadline := time.Now().Add(30 * time.Second)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for time.Now().Before(deadline) {
		if !alive(pid) {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err != nil {
				return nil
			}
			c.Close()
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not own
	}
	return fmt.Errorf("aerokit: asd pid %d still running 30s after it was told to stop", pid)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the comm may hold spaces, the state follows ')'.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// Info sends one command to the info port (plain text, e.g. "statistics"
// or "namespace/test") and returns its one-line answer.
func (s *Server) Info(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port+3)), 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("aerokit: info %q: %w", cmd, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return "", fmt.Errorf("aerokit: info %q: %w", cmd, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("aerokit: info %q: %w", cmd, err)
	}
	return strings.TrimRight(line, "\n"), nil
}

// Stat returns one field of an info answer made of "k=v;k=v" pairs (such
// as "statistics" or "namespace/test").
func (s *Server) Stat(cmd, field string) (string, error) {
	ans, err := s.Info(cmd)
	if err != nil {
		return "", err
	}
	for _, kv := range strings.Split(ans, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == field {
			return v, nil
		}
	}
	return "", fmt.Errorf("aerokit: info %q has no field %q", cmd, field)
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string { return s.logTail(n) }

func (s *Server) logTail(n int) string {
	b, err := os.ReadFile(s.LogPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var shared struct {
	sync.Mutex
	main  bool
	srv   *Server
	err   error
	after []func() // run by Main once the shared server is stopped
}

// Main runs a package's tests (call it from TestMain) and stops the
// server Shared started, if any.
func Main(m interface{ Run() int }) int {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
		os.RemoveAll(shared.srv.dir)
	}
	for _, f := range shared.after {
		f()
	}
	return code
}

// Shared returns host:port of a server shared by all tests of the package
// ($AEROSPIKE_HOST when set, else one kit server started on first use and
// stopped by Main): for tests that only read and write their own keys or
// sets, so the package pays for one start-up. Fault tests use Start.
func Shared(t TB) string {
	t.Helper()
	if h := os.Getenv(EnvHost); h != "" {
		return h
	}
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatalf("aerokit.Shared needs aerokit.Main in the package's TestMain (it stops the server)")
	}
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start()
	}
	if shared.err != nil {
		unavailable(t, "%v", shared.err)
	}
	return shared.srv.Addr()
}
