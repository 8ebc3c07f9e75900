// Package loadgen drives an adedge (or any HTTP server) at a fixed request
// rate and measures latency the way an SDK population experiences it.
//
// It is open-loop: request i is due at start + i/rate whether or not earlier
// ones have finished, and its latency is measured from when it was due and
// queued for a connection, not from when a connection was free. A server
// that stalls therefore shows the stall in every request queued behind it
// instead of hiding it (coordinated omission). The generator's own lateness
// (a timer firing late on a busy machine) is reported as late sends rather
// than charged to the server. Latencies go
// into HdrHistograms, one per connection, merged at the end.
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
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Options configure a run.
type Options struct {
	Target   string        // base URL, e.g. http://127.0.0.1:8080
	Path     string        // default /v1/ad
	Rate     float64       // requests per second
	Duration time.Duration // how long to send
	Conns    int           // concurrent connections (default 64)
	Timeout  time.Duration // per request (default 1 s)
	// Targets are request URIs (path and query) to cycle through; when empty
	// the mix is drawn from Inventory.
	Targets   []string
	Inventory string // directory with placements.jsonl and profiles.jsonl
	Seed      uint64
	Progress  io.Writer // a line per second; nil for none
}

// Result is one run's outcome.
type Result struct {
	Target      string         `json:"target"`
	Rate        float64        `json:"rate"`
	Duration    float64        `json:"duration_seconds"`
	Sent        int64          `json:"sent"`
	Completed   int64          `json:"completed"`
	Errors      int64          `json:"errors"`
	Achieved    float64        `json:"achieved_rps"`
	Status      map[string]int `json:"status"`
	FillRate    float64        `json:"fill_rate"` // 200 / (200 + 204)
	LatencyUS   Percentiles    `json:"latency_us"`
	MissedSends int64          `json:"late_sends"` // sends more than 1 ms behind schedule (the generator itself lagging)
}

// Percentiles of latency in microseconds.
type Percentiles struct {
	P50, P90, P99, P999, Max, Mean float64
}

// MarshalJSON uses conventional percentile names.
func (p Percentiles) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]float64{"p50": p.P50, "p90": p.P90, "p99": p.P99, "p99.9": p.P999, "max": p.Max, "mean": p.Mean})
}

// Run sends load as configured and returns the measurements.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Rate <= 0 || o.Duration <= 0 {
		return nil, errors.New("loadgen: rate and duration must be > 0")
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
	u, err := url.Parse(o.Target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("loadgen: target %q: want http://HOST:PORT", o.Target)
	}
	targets := o.Targets
	if len(targets) == 0 {
		if targets, err = Mix(o.Inventory, o.Path, 20000, o.Seed); err != nil {
			return nil, err
		}
	}
	hc := &fasthttp.HostClient{Addr: u.Host, IsTLS: u.Scheme == "https", MaxConns: o.Conns,
		ReadTimeout: o.Timeout, WriteTimeout: o.Timeout, MaxIdleConnDuration: time.Minute}

	total := int64(o.Rate * o.Duration.Seconds())
	type job struct {
		intended time.Time
		uri      string
	}
	jobs := make(chan job, max(int(o.Rate), 1024)) // one second of backlog
	type worker struct {
		h      *hdrhistogram.Histogram
		status map[int]int
		errs   int64
	}
	workers := make([]*worker, o.Conns)
	var completed atomic.Int64
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{h: hdrhistogram.New(1, 60_000_000, 3), status: map[int]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for j := range jobs {
				req.SetRequestURI(o.Target + j.uri)
				err := hc.Do(req, resp) // ReadTimeout/WriteTimeout bound it; DoTimeout would cost a goroutine per call
				lat := time.Since(j.intended)
				completed.Add(1)
				if err != nil {
					w.errs++
					continue
				}
				_ = w.h.RecordValue(max(lat.Microseconds(), 1))
				w.status[resp.StatusCode()]++
			}
		}()
	}

	start := time.Now().Add(10 * time.Millisecond)
	interval := float64(time.Second) / o.Rate
	var sent, late int64
	stopProgress := make(chan struct{})
	if o.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case now := <-t.C:
					el := now.Sub(start).Seconds()
					fmt.Fprintf(o.Progress, "loadgen: %5.1fs sent %d completed %d (%.0f/s)\n", el, atomic.LoadInt64(&sent), completed.Load(), float64(completed.Load())/el)
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(o.Seed, 99))
send:
	for i := int64(0); i < total; i++ {
		at := start.Add(time.Duration(float64(i) * interval))
		// Sleep only for gaps worth a timer; shorter ones are sent at once
		// (latency still counts from the intended time).
		if d := time.Until(at); d > 200*time.Microsecond {
			time.Sleep(d)
			if ctx.Err() != nil {
				break send
			}
		} else if -d > time.Millisecond {
			late++
		}
		// Latency counts from the moment the request was due and handed to a
		// connection: time spent waiting for a free connection (a slow
		// server) counts, the generator's own timer overshoot does not
		// (late sends are reported separately).
		select {
		case jobs <- job{intended: time.Now(), uri: targets[rng.IntN(len(targets))]}:
			atomic.AddInt64(&sent, 1)
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	close(stopProgress)
	elapsed := time.Since(start)

	res := &Result{Target: o.Target, Rate: o.Rate, Duration: elapsed.Seconds(), Sent: sent, Completed: completed.Load(),
		Status: map[string]int{}, MissedSends: late}
	h := hdrhistogram.New(1, 60_000_000, 3)
	for _, w := range workers {
		h.Merge(w.h)
		res.Errors += w.errs
		for code, n := range w.status {
			res.Status[fmt.Sprint(code)] += n
		}
	}
	res.Achieved = float64(res.Completed-res.Errors) / elapsed.Seconds()
	if f, n := res.Status["200"], res.Status["204"]; f+n > 0 {
		res.FillRate = float64(f) / float64(f+n)
	}
	res.LatencyUS = Percentiles{
		P50: float64(h.ValueAtQuantile(50)), P90: float64(h.ValueAtQuantile(90)), P99: float64(h.ValueAtQuantile(99)),
		P999: float64(h.ValueAtQuantile(99.9)), Max: float64(h.Max()), Mean: math.Round(h.Mean()),
	}
	return res, nil
}

// WriteTable prints r for people.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "target      %s\n", r.Target)
	fmt.Fprintf(w, "rate        %.0f/s asked, %.0f/s achieved over %.1fs (%d sent, %d errors, %d late sends)\n", r.Rate, r.Achieved, r.Duration, r.Sent, r.Errors, r.MissedSends)
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s: %d", c, r.Status[c]))
	}
	fmt.Fprintf(w, "status      %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "fill rate   %.1f%%\n", 100*r.FillRate)
	p := r.LatencyUS
	fmt.Fprintf(w, "latency us  p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  mean %.0f\n", p.P50, p.P90, p.P99, p.P999, p.Max, p.Mean)
}

// Mix builds n request URIs from an inventory: placements uniformly,
// devices from profiles.jsonl with a Zipf skew (a few heavy users, a long
// tail) plus 10% without a device, countries skewed like real traffic, and
// the OS implied by the device id (upper-case IDFA = iOS).
func Mix(dir, path string, n int, seed uint64) ([]string, error) {
	if dir == "" {
		return nil, errors.New("loadgen: no --inventory to draw requests from")
	}
	placements, err := column(filepath.Join(dir, "placements.jsonl"), "id", 1_000_000)
	if err != nil {
		return nil, err
	}
	devices, _ := column(filepath.Join(dir, "profiles.jsonl"), "device", 200_000)
	if len(placements) == 0 {
		return nil, fmt.Errorf("loadgen: %s has no placements", dir)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	var zipf *rand.Zipf
	if len(devices) > 1 {
		zipf = rand.NewZipf(rng, 1.1, 1, uint64(len(devices)-1))
	}
	countries := []string{"US", "US", "US", "US", "GB", "DE", "JP", "BR", "IN", "FR", "CA", "KR", "MX", "ES", "IT", "AU"}
	out := make([]string, n)
	for i := range out {
		q := url.Values{}
		q.Set("placement", placements[rng.IntN(len(placements))])
		q.Set("country", countries[rng.IntN(len(countries))])
		os := "android"
		if zipf != nil && rng.IntN(10) > 0 {
			d := devices[zipf.Uint64()]
			q.Set("device", d)
			if strings.ToUpper(d) == d {
				os = "ios"
			}
		} else if rng.IntN(3) == 0 {
			os = "ios"
		}
		q.Set("os", os)
		if os == "ios" {
			q.Set("osv", fmt.Sprintf("%d.%d", 14+rng.IntN(4), rng.IntN(5)))
		} else {
			q.Set("osv", fmt.Sprint(9+rng.IntN(5)))
		}
		out[i] = path + "?" + q.Encode()
	}
	return out, nil
}

// column reads up to limit values of a string field from a JSONL file.
func column(path, field string, limit int) ([]string, error) {
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
