package aerokit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"
	"github.com/aerospike/aerospike-client-go/v7/types"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func client(t *testing.T, addr string) *as.Client {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	cp := as.NewClientPolicy()
	cp.Timeout = 5 * time.Second
	c, err := as.NewClientWithPolicyAndHost(cp, as.NewHost(host, p))
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

func key(t *testing.T, k string) *as.Key {
	kk, err := as.NewKey(NamespaceTest, "aerokit", k)
	if err != nil {
		t.Fatal(err)
	}
	return kk
}

// TestKillRestartPause drives one kit server through every fault the
// helper offers and checks what a client sees after each.
func TestKillRestartPause(t *testing.T) {
	s := Start(t)
	if ans, err := s.Info("namespaces"); err != nil || !strings.Contains(ans, NamespaceTest) || !strings.Contains(ans, NamespaceProfiles) {
		t.Fatalf("info namespaces = %q, %v", ans, err)
	}
	c := client(t, s.Addr())
	if err := c.PutBins(nil, key(t, "a"), as.NewBin("v", 1)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Stat("namespace/test", "objects"); err != nil || n != "1" {
		t.Fatalf("objects = %q, %v", n, err)
	}

	// Paused: the connection is accepted but never answered.
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	p := as.NewPolicy()
	p.TotalTimeout, p.MaxRetries = 200*time.Millisecond, 0
	start := time.Now()
	if _, err := c.Get(p, key(t, "a")); err == nil {
		t.Fatal("read from a paused server succeeded")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("read against a paused server took %v", el)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	p.TotalTimeout = 5 * time.Second
	if rec, err := c.Get(p, key(t, "a")); err != nil || rec.Bins["v"] != 1 {
		t.Fatalf("after resume: %v, %v", rec, err)
	}

	// Killed: the port refuses at once and nothing survives a restart
	// (memory storage).
	pid, err := s.Pid()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("pid %d alive after Kill", pid)
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("service port accepts after Kill")
	}
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	// The same client reconnects by itself (its tend finds the node back).
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Get(p, key(t, "a"))
		if err != nil && errors.Is(err, &as.AerospikeError{ResultCode: types.KEY_NOT_FOUND_ERROR}) {
			break
		}
		if err == nil {
			t.Fatal("record survived a kill of a memory namespace")
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not come back after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling the client's reconnect
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
}

// TestPersistSurvivesKill: a Persist server keeps its records across a
// SIGKILL and a restart (the memory namespace does not:
// TestKillRestartPause), once WaitPersisted says they are in the file.
func TestPersistSurvivesKill(t *testing.T) {
	s := StartWith(t, Options{Persist: true})
	c := client(t, s.Addr())
	for i := 0; i < 100; i++ {
		if _, err := c.Operate(nil, key(t, "n"), as.AddOp(as.NewBin("v", 1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitPersisted(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	p := as.NewPolicy()
	p.TotalTimeout = 5 * time.Second
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err := c.Get(p, key(t, "n"))
		if err == nil {
			if rec.Bins["v"] != 100 {
				t.Fatalf("after kill and restart v = %v, want 100", rec.Bins["v"])
			}
			break
		}
		if errors.Is(err, &as.AerospikeError{ResultCode: types.KEY_NOT_FOUND_ERROR}) {
			t.Fatal("record lost in a kill of a Persist server")
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not come back after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling the client's reconnect
	}
}

// TestReadOnlyKit starts the package's shared server from a copy of the
// kit that nobody can write to (as CI mounts it), found through
// ADEDGE_AEROSPIKE_KIT; the chmod back waits for Main to stop it.
func TestReadOnlyKit(t *testing.T) {
	kit, err := Kit()
	if err != nil {
		unavailable(t, "%v", err)
	}
	tmp, err := os.MkdirTemp("", "aerokit-ro-") // outlives t: the shared server runs from it
	if err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(tmp, "kit")
	if out, err := exec.Command("cp", "-r", kit, ro).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	chmodTree(t, ro, 0o555, 0o444)
	shared.Lock()
	shared.after = append(shared.after, func() {
		chmodTree(t, ro, 0o755, 0o644)
		os.RemoveAll(tmp)
	})
	shared.Unlock()
	if os.Geteuid() != 0 { // root writes anyway; check it when it means something
		if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644); err == nil {
			t.Fatal("kit copy is writable")
		}
	}
	t.Setenv(EnvKit, ro)
	t.Setenv(EnvHost, "")
	// Shared starts one server for the package, from the read-only kit.
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Fatalf("Shared started two servers: %s, %s", a, b)
	}
	shared.Lock()
	s := shared.srv
	shared.Unlock()
	if s.kit != ro {
		t.Fatalf("started from %s, want %s", s.kit, ro)
	}
	c := client(t, s.Addr())
	if err := c.PutBins(nil, key(t, "ro"), as.NewBin("v", "x")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(kit)
	after, _ := os.ReadDir(ro)
	if len(after) != len(before) {
		t.Fatalf("the server wrote into its kit: %d entries, the kit has %d", len(after), len(before))
	}
}

func chmodTree(t *testing.T, root string, dirMode, fileMode fs.FileMode) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		m := fileMode
		if d.IsDir() {
			m = dirMode
		} else if st, err := os.Stat(p); err == nil && st.Mode()&0o100 != 0 {
			m = dirMode // executables keep their x bits
		}
		return os.Chmod(p, m)
	})
}

// TestKitSearch finds shared/aerospike beside a clone placed anywhere,
// from a package directory deep inside it, and honours the override.
func TestKitSearch(t *testing.T) {
	top := t.TempDir()
	repo := filepath.Join(top, "ci", "checkout", "adedge")
	kit := filepath.Join(top, "ci", "shared", "aerospike")
	for _, d := range []string{filepath.Join(repo, "server", "profiles"), kit} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module x\n"), 0o644)
	for _, f := range []string{"start.sh", "stop.sh", "asd"} {
		os.WriteFile(filepath.Join(kit, f), []byte("#!/bin/sh\n"), 0o755)
	}
	t.Chdir(filepath.Join(repo, "server", "profiles"))
	t.Setenv(EnvKit, "")
	os.Unsetenv(EnvKit)
	got, err := Kit()
	if err != nil || got != kit {
		t.Fatalf("Kit() = %q, %v; want %q", got, err, kit)
	}

	// A kit without an executable asd is not a kit.
	os.Chmod(filepath.Join(kit, "asd"), 0o644)
	if _, err := Kit(); err == nil || !strings.Contains(err.Error(), EnvKit) {
		t.Fatalf("broken kit: err = %v, want one naming %s", err, EnvKit)
	}
	os.Chmod(filepath.Join(kit, "asd"), 0o755)

	other := t.TempDir()
	t.Setenv(EnvKit, other)
	if _, err := Kit(); err == nil || !strings.Contains(err.Error(), other) {
		t.Fatalf("override to an empty dir: err = %v", err)
	}
	t.Setenv(EnvKit, kit)
	if got, err := Kit(); err != nil || got != kit {
		t.Fatalf("override: %q, %v", got, err)
	}
}

// recorder is a testing.TB that records Skipf and Fatalf.
type recorder struct {
	*testing.T
	skipped, failed string
}

func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// TestMissingKitSkipsOrFails: outside CI a missing server skips with the
// reason; under CI=true it fails.
func TestMissingKitSkipsOrFails(t *testing.T) {
	t.Setenv(EnvKit, t.TempDir())
	t.Setenv(EnvHost, "")
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recorder{T: t}
		_, err := start()
		if err == nil {
			t.Fatal("start with an empty kit dir succeeded")
		}
		unavailable(r, "%v", err)
		if ci == "true" {
			if r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, "CI=true") {
				t.Fatalf("CI=true: failed %q skipped %q", r.failed, r.skipped)
			}
		} else if r.skipped == "" || r.failed != "" || !strings.Contains(r.skipped, "start.sh") {
			t.Fatalf("outside CI: failed %q skipped %q", r.failed, r.skipped)
		}
	}
}

// TestAddrHonoursHost: AEROSPIKE_HOST wins over the kit.
func TestAddrHonoursHost(t *testing.T) {
	t.Setenv(EnvHost, "10.1.2.3:3000")
	t.Setenv(EnvNamespace, "prod")
	if got := Addr(t); got != "10.1.2.3:3000" {
		t.Fatalf("Addr = %q", got)
	}
	if got := Shared(t); got != "10.1.2.3:3000" {
		t.Fatalf("Shared = %q", got)
	}
	if ns := Namespace(); ns != "prod" {
		t.Fatalf("Namespace = %q", ns)
	}
	t.Setenv(EnvHost, "")
	if ns := Namespace(); ns != NamespaceTest {
		t.Fatalf("Namespace without a host = %q", ns)
	}
}

// TestHelperOwner is not a test: TestOrphanedServerStops runs the test
// binary with it as a process that starts a kit server, prints its pid and
// directory, and blocks until it is killed without any cleanup.
func TestHelperOwner(t *testing.T) {
	if os.Getenv("AEROKIT_HELPER_OWNER") != "1" {
		t.Skip("helper process for TestOrphanedServerStops")
	}
	s, err := StartServer(Options{})
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		os.Exit(3)
	}
	pid, _ := s.Pid()
	fmt.Printf("READY %d %s\n", pid, s.Dir())
	select {} // until SIGKILL, like a test binary killed by go test -timeout
}

// TestOrphanedServerStops: a process that started a kit server and is
// killed (no cleanup runs) does not leave asd running: its watchdog stops
// the server and removes its directory.
func TestOrphanedServerStops(t *testing.T) {
	if _, err := Kit(); err != nil {
		unavailable(t, "%v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperOwner$", "-test.v")
	cmd.Env = append(os.Environ(), "AEROKIT_HELPER_OWNER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "READY %d %s", &pid, &dir); err == nil {
			break
		}
		if strings.HasPrefix(sc.Text(), "ERR ") {
			cmd.Process.Kill()
			cmd.Wait()
			unavailable(t, "%s", sc.Text())
		}
	}
	if pid == 0 || !serves(pid, dir) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper printed no running server (pid %d dir %q)", pid, dir)
	}
	go io.Copy(io.Discard, out)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := waitExit(pid, 60*time.Second); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("asd of a killed owner: %v", err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) { // polling the watchdog's rm
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%s still there after its server was stopped", dir)
		}
	}
}

// TestReapOrphans: a server whose owner is gone and that has no watchdog
// (killed with it) is stopped by the next start's reaper; servers whose
// owner runs are left alone.
func TestReapOrphans(t *testing.T) {
	kit, err := Kit()
	if err != nil {
		unavailable(t, "%v", err)
	}
	orphan, err := StartServer(Options{Kit: kit, noGuard: true})
	if err != nil {
		unavailable(t, "%v", err)
	}
	t.Cleanup(func() { orphan.Stop(); os.RemoveAll(orphan.Dir()) })
	Shared(t) // owned by this process: must survive
	shared.Lock()
	live := shared.srv
	shared.Unlock()
	pid, _ := orphan.Pid()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	// The owner file now names a process that has exited.
	if err := os.WriteFile(filepath.Join(orphan.Dir(), ownerFile), []byte(fmt.Sprintf("%d 1\n", dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	reaped := reapOrphans(filepath.Dir(orphan.Dir()))
	if len(reaped) != 1 || reaped[0] != orphan.Dir() {
		t.Fatalf("reaped %v, want [%s]", reaped, orphan.Dir())
	}
	if alive(pid) {
		t.Fatalf("orphan asd %d still running", pid)
	}
	if _, err := os.Stat(orphan.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("orphan dir: %v", err)
	}
	lp, _ := live.Pid()
	if !serves(lp, live.Dir()) {
		t.Fatal("the reaper stopped a server whose owner runs")
	}
}

// TestFIFOAndNsupPeriod: Options.FIFO runs the server at SCHED_FIFO with
// that priority, and the info port's set-config moves nsup-period, the
// two things the benchmark suite does to its server.
func TestFIFOAndNsupPeriod(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SCHED_FIFO needs root")
	}
	if _, err := exec.LookPath("chrt"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chrt (util-linux) missing under CI=true")
		}
		t.Skip("chrt missing")
	}
	s := StartWith(t, Options{FIFO: 2})
	pid, err := s.Pid()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after "pid (comm) ": state is field 3, rt_priority 40, policy 41.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 39 || f[37] != "2" || f[38] != "1" {
		t.Fatalf("asd rt_priority/policy = %v/%v, want 2/1 (SCHED_FIFO)", f[37:38], f[38:39])
	}
	if ans, err := s.Info("set-config:context=namespace;id=" + NamespaceProfiles + ";nsup-period=3600"); err != nil || ans != "ok" {
		t.Fatalf("set-config nsup-period: %q, %v", ans, err)
	}
	if v, err := s.Stat("namespace/"+NamespaceProfiles, "nsup-period"); err != nil || v != "3600" {
		t.Fatalf("nsup-period after set-config = %q, %v", v, err)
	}
}
