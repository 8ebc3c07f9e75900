package benchsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adedge/adedge/internal/hiccup"
	"github.com/adedge/adedge/tools/loadgen"
	"github.com/adedge/adedge/tools/promtext"
)

// Options configure a suite run.
type Options struct {
	Quick bool   // short runs, one repetition: a smoke test (< 2 min)
	Bin   string // directory holding adedge, adbuilder and adtool
	Src   string // repository root (for go test -bench and scripts)
	Work  string // scratch directory
	Log   io.Writer
	// Only runs just the named steps (and setup): "micro", "throughput",
	// "find-max", "latency", "aerospike", "swaps", "builder",
	// "distribution", "pacing".
	Only []string
	// FIFO runs the servers under test and the load generators at
	// SCHED_FIFO 1 (chrt): on a shared machine with
	// autogroups on, a nice-19 job in another session weighs as much as
	// the measurement and its time slices show up as milliseconds of p99.
	FIFO bool
}

// suite is one run's state.
type suite struct {
	o      Options
	rep    *Report
	procs  []*exec.Cmd
	pin    bool // taskset present
	rt     bool // servers and generators run SCHED_FIFO 1 (Options.FIFO and chrt works)
	inv    string
	snap   string
	key    string
	adedge string // serving address of the file-store edge
	admin  string
	base   string  // baseline address
	nginx  string  // nginx address, "" when not installed
	body   string  // adedge's fill body, served by the baselines
	adURL  string  // a URL that fills
	step   string  // the step running, stamped on its rows
	maxRPS float64 // adedge's median wrk throughput
	p99Max float64 // adedge's highest rate with p99 <= 1 ms
	genMax float64 // the load generator's own: against the trivial handler
	genRan bool    // genMax was measured (0 then means no rate passed)
}

// Run runs the suite and returns the report; steps that cannot run (a
// missing program) are listed in Report.Skipped rather than failing it.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	s := &suite{o: o, rep: &Report{Mode: "full", Started: time.Now(), Machine: machine(o.Src)}}
	if o.Quick {
		s.rep.Mode = "quick"
	}
	_, err := exec.LookPath("taskset")
	s.pin = err == nil && runtime.NumCPU() >= 2
	if !s.pin {
		s.skip("CPU pinning: taskset missing or one CPU; servers and load share cores")
	}
	if o.FIFO {
		if err := exec.Command("chrt", "-f", "1", "true").Run(); err != nil {
			s.skip("SCHED_FIFO (--fifo): chrt -f 1 failed (" + err.Error() + "); servers and load run at normal priority")
		} else {
			s.rt = true
			s.rep.Sched = "servers under test and load generators at SCHED_FIFO 1 (chrt -f 1), above the shared machine's other sessions; the Aerospike server at SCHED_FIFO 2, above the load generator it shares CPU 1 with"
		}
	}
	defer s.stopAll()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"setup", s.setup},
		{"micro", s.micro},
		{"throughput", s.throughput},
		{"find-max", s.findMax},
		{"latency", s.latency},
		{"aerospike", s.aerospikeLatency},
		{"swaps", s.swaps},
		{"builder", s.builder},
		{"distribution", s.distribution},
		{"pacing", s.pacing},
	}
	for _, st := range steps {
		if ctx.Err() != nil {
			return s.rep, ctx.Err()
		}
		if len(o.Only) > 0 && st.name != "setup" && !slices.Contains(o.Only, st.name) {
			continue
		}
		fmt.Fprintf(o.Log, "bench: %s\n", st.name)
		s.step = st.name
		t0 := time.Now()
		if err := st.fn(ctx); err != nil {
			if st.name == "setup" {
				return s.rep, fmt.Errorf("bench: setup: %w", err)
			}
			s.skip(fmt.Sprintf("%s: %v", st.name, err))
		}
		fmt.Fprintf(o.Log, "bench: %s done in %v\n", st.name, time.Since(t0).Round(time.Second))
	}
	s.rep.Duration = time.Since(s.rep.Started).Seconds()
	return s.rep, nil
}

func (s *suite) skip(why string) {
	s.rep.Skipped = append(s.rep.Skipped, why)
	fmt.Fprintf(s.o.Log, "bench: skipped: %s\n", why)
}

func (s *suite) add(r Row) {
	r.Step = s.step
	if s.rt && strings.HasPrefix(r.Command, "taskset ") {
		r.Command = "chrt -f 1 " + r.Command
	}
	if r.Target != "" && r.Met == "" {
		r.Met = met(r.Value, r.Target)
	}
	s.rep.Rows = append(s.rep.Rows, r)
	fmt.Fprintf(s.o.Log, "bench:   %s: %s\n", r.What, r.Figure)
}

// pick returns the short or the full value.
func pick[T any](s *suite, quick, full T) T {
	if s.o.Quick {
		return quick
	}
	return full
}

// server and client prefix a command with its CPU pinning (and, with
// --fifo, its real-time priority).
func (s *suite) server(args ...string) []string { return s.sched(s.pinned("0", args)) }
func (s *suite) client(args ...string) []string { return s.sched(s.pinned("1", args)) }

// sched puts chrt -f 1 before args when the suite runs at SCHED_FIFO.
func (s *suite) sched(args []string) []string {
	if !s.rt {
		return args
	}
	return append([]string{"chrt", "-f", "1"}, args...)
}
func (s *suite) pinned(cpu string, args []string) []string {
	if !s.pin {
		return args
	}
	return append([]string{"taskset", "-c", cpu}, args...)
}

// start runs a long-lived process, logging to a file in Work.
func (s *suite) start(name string, args ...string) error {
	logf, err := os.Create(filepath.Join(s.o.Work, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	s.procs = append(s.procs, cmd)
	return nil
}

func (s *suite) stopAll() {
	for _, p := range s.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range s.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
		}
	}
	s.procs = nil
}

// run runs a command to completion and returns its stdout.
func run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, lastLines(errb.String(), 5))
	}
	return out.Bytes(), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " / ")
}

func waitHTTP(url string) error {
	c := &http.Client{Timeout: time.Second}
	for range 100 {
		if res, err := c.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode < 500 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s in 10 s", url)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *suite) bin(name string) string { return filepath.Join(s.o.Bin, name) }

// setup makes the inventory and snapshot and starts the edge and the
// baselines every later step uses.
func (s *suite) setup(ctx context.Context) error {
	if err := os.MkdirAll(s.o.Work, 0o755); err != nil {
		return err
	}
	s.inv = filepath.Join(s.o.Work, "inv-medium")
	if _, err := os.Stat(filepath.Join(s.inv, "campaigns.jsonl")); err != nil {
		if _, err := run(ctx, s.bin("adtool"), "gen", "--quiet", "--scale", "medium", "--seed", "1", "--out", s.inv); err != nil {
			return err
		}
	}
	s.snap = filepath.Join(s.o.Work, "snap")
	os.RemoveAll(s.snap)
	if _, err := run(ctx, s.bin("adbuilder"), "build", "--quiet", "--input", s.inv, "--out", s.snap, "--created", "2026-11-22T00:00:00Z"); err != nil {
		return err
	}
	s.key = filepath.Join(s.o.Work, "token.key")
	if err := os.WriteFile(s.key, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		return err
	}
	s.adedge, s.admin = freeAddr(), freeAddr()
	if err := s.start("adedge", s.server(s.edgeArgs(s.adedge, s.admin)...)...); err != nil {
		return err
	}
	if err := waitHTTP("http://" + s.adedge + "/health"); err != nil {
		return err
	}
	// One URL that fills, with a device that has a profile: the
	// throughput comparisons serve its body from the baselines.
	devs, err := loadgen.Column(filepath.Join(s.inv, "profiles.jsonl"), "device", 3)
	if err != nil || len(devs) < 3 {
		return fmt.Errorf("profiles.jsonl: %d devices, %v", len(devs), err)
	}
	dev := devs[2]
	pls, err := loadgen.Column(filepath.Join(s.inv, "placements.jsonl"), "id", 50)
	if err != nil {
		return err
	}
	for _, pl := range pls {
		if s.adURL != "" {
			break
		}
		u := fmt.Sprintf("http://%s/v1/ad?placement=%s&country=US&os=android&osv=12&device=%s", s.adedge, pl, dev)
		res, err := http.Get(u)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 {
			s.adURL = u
			s.body = filepath.Join(s.o.Work, "body.json")
			if err := os.WriteFile(s.body, b, 0o644); err != nil {
				return err
			}
		}
	}
	if s.adURL == "" {
		return errors.New("no filling placement among the first 50")
	}
	s.base = freeAddr()
	if err := s.start("baseline", s.server(s.bin("adtool"), "baseline", "--listen", s.base, "--body", s.body)...); err != nil {
		return err
	}
	if err := waitHTTP("http://" + s.base + "/"); err != nil {
		return err
	}
	if err := s.startNginx(); err != nil {
		s.skip("nginx comparison: " + err.Error())
	}
	return nil
}

// edgeArgs is the suite's file-profile edge command line on addr and
// admin, plus extra flags: the main edge and the throughput variants.
func (s *suite) edgeArgs(addr, admin string, extra ...string) []string {
	return append([]string{s.bin("adedge"), "--snapshot-dir", s.snap, "--listen", addr, "--admin", admin,
		"--profiles", "file:" + filepath.Join(s.inv, "profiles.jsonl"), "--token-key", s.key, "--snapshot-poll", "500ms"}, extra...)
}

// startNginx serves the same body with `return 200` from one nginx worker.
func (s *suite) startNginx() error {
	ngx, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, e := os.Stat(p); e == nil {
				ngx, err = p, nil
			}
		}
	}
	if err != nil {
		return errors.New("nginx not installed (apt-get install nginx-light)")
	}
	body, err := os.ReadFile(s.body)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.o.Work, "nginx")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	addr := freeAddr()
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  keepalive_requests 1000000;
  server {
    listen %[2]s;
    location / { default_type application/json; return 200 '%[3]s'; }
  }
}
`, dir, addr, strings.ReplaceAll(string(body), "'", `\'`))
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := s.start("nginx", s.server(ngx, "-c", cf, "-p", dir)...); err != nil {
		return err
	}
	if err := waitHTTP("http://" + addr + "/"); err != nil {
		return err
	}
	s.nginx = addr
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	ys := slices.Clone(xs)
	slices.Sort(ys)
	if len(ys)%2 == 1 {
		return ys[len(ys)/2]
	}
	return (ys[len(ys)/2-1] + ys[len(ys)/2]) / 2
}

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrk returns requests per second for url.
func (s *suite) wrk(ctx context.Context, url string, d time.Duration) (float64, error) {
	out, err := run(ctx, s.client("wrk", "-t1", "-c64", fmt.Sprintf("-d%ds", int(d.Seconds())), url)...)
	if err != nil {
		return 0, err
	}
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk printed no Requests/sec")
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// loadgen runs adtool loadgen (pinned to the client CPU) and decodes its JSON.
func (s *suite) loadgen(ctx context.Context, target string, args ...string) (*loadgen.Result, error) {
	a := s.client(append([]string{s.bin("adtool"), "loadgen", "--quiet", "--json", "--target", target, "--inventory", s.inv}, args...)...)
	out, err := run(ctx, a...)
	var r loadgen.Result
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		if err != nil {
			return nil, err
		}
		return nil, jerr
	}
	return &r, nil // a non-zero exit with a result means some requests failed: the result says so
}

func (s *suite) scrape() (promtext.Samples, error) {
	return promtext.Scrape("http://" + s.admin + "/metrics")
}

// serverQuantile formats the edge's own histogram quantile between scrapes.
func serverQuantile(a, b promtext.Samples, q float64) (float64, string) {
	le, n := promtext.Quantile(a, b, "adedge_ad_request_duration_seconds", q)
	if n == 0 {
		return 0, "no observations"
	}
	if math.IsInf(le, 1) {
		return le, "> 2.5 s" // the histogram's last finite bucket (server/edge/metrics.go)
	}
	return le * 1e6, fmt.Sprintf("<= %.0f us", le*1e6)
}

func fmtRate(r float64) string {
	if r >= 10000 {
		return fmt.Sprintf("%.1fk", r/1000)
	}
	return fmt.Sprintf("%.0f", r)
}

// machine describes this host.
func machine(src string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if i := bytes.Index(b, []byte("model name")); i >= 0 {
			line := b[i:]
			line = line[:bytes.IndexByte(line, '\n')]
			m.CPUModel = strings.TrimSpace(string(line[bytes.IndexByte(line, ':')+1:]))
		}
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemoryGiB = int(math.Round(float64(si.Totalram) * float64(si.Unit) / (1 << 30)))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("git", "-C", src, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// stepNames is the suite's order, for sorting merged rows.
var stepNames = []string{"micro", "throughput", "find-max", "latency", "aerospike", "swaps", "builder", "distribution", "pacing"}

func stepOrder(step string) int {
	if i := slices.Index(stepNames, step); i >= 0 {
		return i
	}
	return len(stepNames)
}

// meteredLoadgen is loadgen with the platform meter running beside it:
// the run's result and the row's platform figure ("" without --fifo).
func (s *suite) meteredLoadgen(ctx context.Context, target string, args ...string) (*loadgen.Result, string, error) {
	stop := s.platformMeter(ctx)
	r, err := s.loadgen(ctx, target, args...)
	return r, stop(), err
}

// platformMeter runs `adtool hiccup` on CPUs 0 and 1 beside a latency
// run (--fifo only: its threads need SCHED_FIFO 99 to say anything about
// the platform rather than the guest's own load). stop ends it and
// returns the row's platform figure: how late a sleeper nothing in the
// guest can preempt woke on each CPU. A client p99.9 of the same size is
// then the platform's stall, not the edge's (docs/BENCHMARKS.md, "Stalls
// that are the platform's"). Its cost: 1,000 wake-ups a second per CPU.
func (s *suite) platformMeter(ctx context.Context) (stop func() string) {
	if !s.rt || !s.pin {
		return func() string { return "" }
	}
	cmd := exec.CommandContext(ctx, s.bin("adtool"), "hiccup", "--cpus", "0,1", "--duration", "1h", "--json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return func() string { return "platform meter: " + err.Error() }
	}
	return func() string {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			return fmt.Sprintf("platform meter: %v: %s", err, lastLines(errb.String(), 2))
		}
		return platformFigure(out.Bytes())
	}
}

// platformFigure formats adtool hiccup's JSON for a row.
func platformFigure(b []byte) string {
	var r struct {
		ThresholdNS time.Duration `json:"threshold_ns"`
		CPUs        []hiccup.CPU  `json:"cpus"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.CPUs) == 0 {
		return fmt.Sprintf("platform meter: unreadable output %q", lastLines(string(b), 1))
	}
	late := make([]string, len(r.CPUs))
	cpus := make([]string, len(r.CPUs))
	stalls := 0
	for i, c := range r.CPUs {
		late[i] = fmt.Sprintf("%.1f", float64(c.MaxLate)/1e6)
		cpus[i] = strconv.Itoa(c.CPU)
		stalls += c.Stalls
	}
	return fmt.Sprintf("platform: a SCHED_FIFO 99 sleeper woke at most %s ms late on CPU %s (%d wake-ups over %v late)",
		strings.Join(late, " / "), strings.Join(cpus, " / "), stalls, r.ThresholdNS)
}
