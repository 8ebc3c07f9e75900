// Package loadgen drives an adedge (or any HTTP server) at a fixed request
// rate and measures latency the way an SDK population experiences it.
//
// It is open-loop in the style of wrk2, on one schedule: request j is
// due at start + j/rate whatever the server does, goes out on an idle
// keep-alive connection (one request in flight per connection, no
// pipelining), and waits for one when all of them are busy. Latency is
// measured from the scheduled time, always: a server that stalls for
// 300 ms shows the stall in every request scheduled during it, as the
// phones waiting on it would, instead of in one request per connection
// (coordinated omission); and the generator's own lateness counts too, so
// its ceiling (FindMax against the trivial handler, `adtool baseline`)
// bounds what any latency figure can say. Sends more than 1 ms after
// their schedule are counted apart: LateSends when every connection was
// busy (the server's), GeneratorLag when the loop itself woke late.
//
// The sender is one event loop (epoll, raw non-blocking sockets, each
// request's bytes built once, no allocation per request) on one OS
// thread: a goroutine, a timer and fasthttp's client per request capped
// the earlier generator at 8,250 req/s within p99 1 ms on one core.
//
// Latencies go into an HdrHistogram (the standard for this; it keeps
// percentiles exact to 3 significant digits at any count in fixed memory).
package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Request is one entry of the request mix.
type Request struct {
	Method string // GET or POST
	URI    string // path and query
	Body   []byte // POST body (JSON), nil for GET
}

// Options configure a run.
type Options struct {
	Target   string        // base URL, e.g. http://127.0.0.1:8080
	Path     string        // default /v1/ad
	Rate     float64       // requests per second, all connections together
	Duration time.Duration // how long to send (the warm-up included)
	// Warmup is the first part of Duration whose latencies are not
	// recorded: connections are dialled and caches warmed then.
	Warmup  time.Duration
	Conns   int           // connections, each with its own schedule (default 64)
	Timeout time.Duration // per request (default 1 s)
	// Targets are the requests to cycle through; when empty the mix is
	// drawn from Inventory.
	Targets   []Request
	Inventory string  // directory with placements.jsonl and profiles.jsonl
	PostShare float64 // share of the mix sent as POST with a JSON body (SDKs do both)
	Seed      uint64
	// Progress gets a status line per second; nil for none. With
	// ProgressTTY the line is redrawn in place.
	Progress    io.Writer
	ProgressTTY bool
}

// Result is one run's outcome.
type Result struct {
	Target   string         `json:"target"`
	Rate     float64        `json:"rate"`
	Conns    int            `json:"conns"`
	Duration float64        `json:"duration_seconds"`
	Warmup   float64        `json:"warmup_seconds"`
	Sent     int64          `json:"sent"`
	Recorded int64          `json:"recorded"` // completed after the warm-up, in the percentiles
	Errors   int64          `json:"errors"`
	ErrKinds map[string]int `json:"error_kinds,omitempty"` // timeout, refused, reset, other
	Achieved float64        `json:"achieved_rps"`          // answered requests per second
	Status   map[string]int `json:"status"`
	FillRate float64        `json:"fill_rate"` // 200 / (200 + 204)
	// LatencyUS is measured from each request's scheduled time.
	LatencyUS Percentiles `json:"latency_us"`
	// LateSends left more than 1 ms after their scheduled time because the
	// connection was still waiting for an earlier answer (charged to the
	// server: their latency counts from the scheduled time).
	LateSends int64 `json:"late_sends"`
	// GeneratorLag counts sends more than 1 ms late because the generator's
	// own timer fired late on an idle connection (not charged: the server
	// could not have seen them earlier). Many of them mean the generator is
	// at its ceiling and the run measures it, not the server.
	GeneratorLag int64 `json:"generator_lag"`
	// CPUPerRequestUS is the generator's own CPU time (user and system,
	// the whole process) per request sent: what a request costs it.
	CPUPerRequestUS float64 `json:"cpu_per_request_us"`
}

// Percentiles of latency in microseconds.
type Percentiles struct {
	P50, P90, P99, P999, Max, Mean float64
}

// MarshalJSON uses conventional percentile names.
func (p Percentiles) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]float64{"p50": p.P50, "p90": p.P90, "p99": p.P99, "p99.9": p.P999, "max": p.Max, "mean": p.Mean})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Percentiles) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*p = Percentiles{P50: m["p50"], P90: m["p90"], P99: m["p99"], P999: m["p99.9"], Max: m["max"], Mean: m["mean"]}
	return nil
}

// Bad is the count of answers that are neither 200 nor 204, plus errors.
func (r *Result) Bad() int64 {
	n := r.Errors
	for code, c := range r.Status {
		if code != "200" && code != "204" {
			n += int64(c)
		}
	}
	return n
}

const lateAfter = time.Millisecond

// worker is the event loop's tally; only the loop touches it until the
// run ends.
type worker struct {
	h        *hdrhistogram.Histogram
	status   [600]int64
	errKinds map[string]int
	errs     int64
	late     int64 // sent late because every connection was busy: the server's
	genLate  int64 // sent late because the loop itself woke late
	rng      *rand.Rand
}

// Run sends load as configured and returns the measurements.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Rate <= 0 || o.Duration <= 0 {
		return nil, errors.New("loadgen: rate and duration must be > 0")
	}
	if o.Warmup < 0 || o.Warmup >= o.Duration {
		return nil, errors.New("loadgen: warm-up must be >= 0 and shorter than the duration")
	}
	if o.Conns <= 0 {
		o.Conns = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Path == "" {
		o.Path = "/v1/ad"
	}
	if o.PostShare < 0 || o.PostShare > 1 {
		return nil, errors.New("loadgen: post share must be in [0, 1]")
	}
	u, err := url.Parse(o.Target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("loadgen: target %q: want http://HOST:PORT", o.Target)
	}
	if u.Scheme == "https" {
		return nil, fmt.Errorf("loadgen: target %q: https is not supported (the edge serves plain HTTP behind its load balancer)", o.Target)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	targets := o.Targets
	if len(targets) == 0 {
		if targets, err = Mix(o.Inventory, o.Path, 20000, o.PostShare, o.Seed); err != nil {
			return nil, err
		}
	}
	// Every request's bytes are built once: the loop writes them as they
	// are, with no formatting or allocation per request.
	prefix := strings.TrimRight(u.Path, "/")
	reqs := make([][]byte, len(targets))
	for i, t := range targets {
		reqs[i] = requestBytes(t, u.Host, prefix)
	}
	// Fewer connections than a rate of one request per connection per
	// second would leave gaps longer than the run.
	conns := o.Conns
	if float64(conns) > o.Rate*o.Duration.Seconds() {
		conns = max(1, int(o.Rate*o.Duration.Seconds()))
	}
	w := &worker{h: hdrhistogram.New(1, 60_000_000, 3), errKinds: map[string]int{}, rng: rand.New(rand.NewPCG(o.Seed, 1))}
	var cnt counters
	e, err := newEngine(&o, host, reqs, conns, w, &cnt)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	const startIn = 20 * time.Millisecond
	cpu0 := cpuTime()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		e.run(ctx, startIn, o.Duration, o.Warmup)
	}()
	start := time.Now().Add(startIn)

	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if o.Progress == nil {
			<-stopProgress
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-stopProgress:
				if o.ProgressTTY {
					fmt.Fprint(o.Progress, "\r\033[K")
				}
				return
			case now := <-t.C:
				d, sent := cnt.done.Load(), cnt.sent.Load()
				el := now.Sub(start).Seconds()
				line := fmt.Sprintf("loadgen: %5.1fs of %.0fs  sent %d  answered %d  %.0f/s now (asked %.0f/s)  in flight %d",
					el, o.Duration.Seconds(), sent, d, float64(d-last), o.Rate, sent-d)
				last = d
				if o.ProgressTTY {
					fmt.Fprintf(o.Progress, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(o.Progress, line)
				}
			}
		}
	}()
	<-loopDone
	close(stopProgress)
	<-progressDone
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0

	res := &Result{Target: o.Target, Rate: o.Rate, Conns: conns, Duration: elapsed.Seconds(), Warmup: o.Warmup.Seconds(),
		Sent: cnt.sent.Load(), Status: map[string]int{}, ErrKinds: w.errKinds,
		Errors: w.errs, LateSends: w.late, GeneratorLag: w.genLate}
	if res.Sent > 0 {
		res.CPUPerRequestUS = math.Round(10*float64(cpu.Microseconds())/float64(res.Sent)) / 10
	}
	var answered int64
	for code, n := range w.status {
		if n > 0 {
			res.Status[strconv.Itoa(code)] = int(n)
			answered += n
		}
	}
	h := w.h
	res.Recorded = h.TotalCount()
	if meas := elapsed - o.Warmup; meas > 0 {
		res.Achieved = float64(answered) / meas.Seconds()
	}
	if f, n := res.Status["200"], res.Status["204"]; f+n > 0 {
		res.FillRate = float64(f) / float64(f+n)
	}
	res.LatencyUS = Percentiles{
		P50: float64(h.ValueAtQuantile(50)), P90: float64(h.ValueAtQuantile(90)), P99: float64(h.ValueAtQuantile(99)),
		P999: float64(h.ValueAtQuantile(99.9)), Max: float64(h.Max()), Mean: math.Round(h.Mean()),
	}
	return res, nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// requestBytes is t as HTTP/1.1 on the wire; prefix is the target URL's
// own path, put before every request URI.
func requestBytes(t Request, host, prefix string) []byte {
	var b strings.Builder
	method := t.Method
	if method == "" {
		method = "GET"
	}
	fmt.Fprintf(&b, "%s %s%s HTTP/1.1\r\nHost: %s\r\n", method, prefix, t.URI, host)
	if t.Body != nil {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(t.Body))
	}
	b.WriteString("\r\n")
	b.Write(t.Body)
	return []byte(b.String())
}

// errKind names an error class for the breakdown.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, errEOF), errors.Is(err, io.EOF):
		return "reset"
	default:
		return "other"
	}
}

// WriteTable prints r for people.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "target      %s (%d connections)\n", r.Target, r.Conns)
	fmt.Fprintf(w, "rate        %.0f/s asked, %.0f/s achieved over %.1fs (warm-up %.1fs; %d sent, %d errors, %d late behind a busy connection, %d late from the generator itself)\n",
		r.Rate, r.Achieved, r.Duration, r.Warmup, r.Sent, r.Errors, r.LateSends, r.GeneratorLag)
	fmt.Fprintf(w, "status      %s\n", joinCounts(r.Status))
	if len(r.ErrKinds) > 0 {
		fmt.Fprintf(w, "errors      %s\n", joinCounts(r.ErrKinds))
	}
	fmt.Fprintf(w, "fill rate   %.1f%%\n", 100*r.FillRate)
	p := r.LatencyUS
	fmt.Fprintf(w, "generator   %.1f us of its own CPU per request\n", r.CPUPerRequestUS)
	fmt.Fprintf(w, "latency us  p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  mean %.0f  (from scheduled send time, %d recorded)\n",
		p.P50, p.P90, p.P99, p.P999, p.Max, p.Mean, r.Recorded)
}

func joinCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// Mix builds n requests from an inventory: placements uniformly, devices
// from profiles.jsonl with a Zipf skew (a few heavy users, a long tail)
// plus 10% without a device, countries skewed like real traffic, the OS
// implied by the device id (upper-case IDFA = iOS), and postShare of them
// as POST with the same fields in a JSON body.
func Mix(dir, path string, n int, postShare float64, seed uint64) ([]Request, error) {
	if dir == "" {
		return nil, errors.New("loadgen: no --inventory to draw requests from")
	}
	placements, err := Column(filepath.Join(dir, "placements.jsonl"), "id", 1_000_000)
	if err != nil {
		return nil, err
	}
	devices, _ := Column(filepath.Join(dir, "profiles.jsonl"), "device", 200_000)
	if len(placements) == 0 {
		return nil, fmt.Errorf("loadgen: %s has no placements", dir)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	var zipf *rand.Zipf
	if len(devices) > 1 {
		zipf = rand.NewZipf(rng, 1.1, 1, uint64(len(devices)-1))
	}
	countries := []string{"US", "US", "US", "US", "GB", "DE", "JP", "BR", "IN", "FR", "CA", "KR", "MX", "ES", "IT", "AU"}
	out := make([]Request, n)
	for i := range out {
		f := map[string]string{
			"placement": placements[rng.IntN(len(placements))],
			"country":   countries[rng.IntN(len(countries))],
		}
		os := "android"
		if zipf != nil && rng.IntN(10) > 0 {
			d := devices[zipf.Uint64()]
			f["device"] = d
			if strings.ToUpper(d) == d {
				os = "ios"
			}
		} else if rng.IntN(3) == 0 {
			os = "ios"
		}
		f["os"] = os
		if os == "ios" {
			f["osv"] = fmt.Sprintf("%d.%d", 14+rng.IntN(4), rng.IntN(5))
		} else {
			f["osv"] = fmt.Sprint(9 + rng.IntN(5))
		}
		if rng.Float64() < postShare {
			body, _ := json.Marshal(f)
			out[i] = Request{Method: "POST", URI: path, Body: body}
			continue
		}
		q := url.Values{}
		for k, v := range f {
			q.Set(k, v)
		}
		out[i] = Request{Method: "GET", URI: path + "?" + q.Encode()}
	}
	return out, nil
}

// Fixed returns a mix of GET requests for the given URIs.
func Fixed(uris ...string) []Request {
	out := make([]Request, len(uris))
	for i, u := range uris {
		out[i] = Request{Method: "GET", URI: u}
	}
	return out
}

// Column reads up to limit values of a string field from a JSONL file
// (lines without it are skipped).
func Column(path, field string, limit int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(out) < limit {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if s, ok := m[field].(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}
