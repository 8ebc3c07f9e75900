package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/internal/atomicfile"
	"github.com/adedge/adedge/server/eventlog"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/tools/gen"
)

// maxRequestBodySize is the serving fasthttp.Server's MaxRequestBodySize in
// server/cmd/adedge (16 KiB); the tests run the handler behind the same bound.
const maxRequestBodySize = 16 << 10

const publicURL = "https://ads.example.test"

// world is a generated inventory and the snapshots built from it, shared by
// the tests of one scale (generated once per test binary).
type world struct {
	invDir   string
	profiles string // profiles.jsonl
	devices  []string

	mu    sync.Mutex
	snaps map[int64][]byte // builds by Created (unix seconds)
	tmp   string
}

var (
	worldsMu sync.Mutex
	worlds   = map[string]*world{}
	tmpRoot  string
)

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "edge-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// baseCreated is the Created time of the first snapshot: an hour ago, so
// campaign schedules (2026-2027 in gen) and snapshot age are realistic.
var baseCreated = time.Now().UTC().Truncate(time.Second).Add(-time.Hour)

// getWorld generates scale ("small" or "medium") once.
func getWorld(tb testing.TB, scale string) *world {
	tb.Helper()
	worldsMu.Lock()
	defer worldsMu.Unlock()
	if w := worlds[scale]; w != nil {
		return w
	}
	w := &world{invDir: filepath.Join(tmpRoot, scale, "inv"), snaps: map[int64][]byte{}, tmp: filepath.Join(tmpRoot, scale, "builds")}
	if _, err := gen.Generate(w.invDir, gen.Scales[scale], 3, nil); err != nil {
		tb.Fatal(err)
	}
	w.profiles = filepath.Join(w.invDir, inventory.ProfilesFile)
	f, err := os.Open(w.profiles)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var p gen.Profile
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			tb.Fatal(err)
		}
		w.devices = append(w.devices, p.Device)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	worlds[scale] = w
	return w
}

// snapshot returns the bytes of a snapshot of w built with the given
// Created time (cached).
func (w *world) snapshot(tb testing.TB, created time.Time) []byte {
	tb.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.snaps[created.Unix()]; ok {
		return b
	}
	out := filepath.Join(w.tmp, fmt.Sprint(created.Unix()))
	res, err := builder.Build(builder.Options{Input: w.invDir, Out: out, Created: created})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(res.Path)
	if err != nil {
		tb.Fatal(err)
	}
	os.RemoveAll(out)
	w.snaps[created.Unix()] = b
	return b
}

// publish writes b into dir the way the builder does (temp file, rename)
// and returns the file's path.
func publish(tb testing.TB, dir string, b []byte) string {
	tb.Helper()
	r, err := snapshot.OpenBytes(b)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	path := filepath.Join(dir, r.Header().Version+".snap")
	if err := atomicfile.WriteBytes(path, b); err != nil {
		tb.Fatal(err)
	}
	return path
}

type envOpts struct {
	scale      string         // default "small"
	empty      bool           // start with no snapshot
	store      string         // "file" (default) or "none"
	storeImpl  profiles.Store // used instead of store when set
	capQueue   int
	noWorkers  bool
	env        string
	httpServer bool          // serve over an in-memory listener
	accessLog  bool          // an eventlog ring drained into env.logBuf
	config     func(*Config) // adjusts the server's Config (A/B counters, staging)
	// healthEvents is the health state's EventsFn.
	healthEvents func(now time.Time) (notRecorded, backlog bool)
}

// syncBuf is a goroutine-safe bytes.Buffer for the log ring's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one edge: snapshot source, profile store, signer, metrics,
// health, the Server, and a fasthttp server on an in-memory listener.
type env struct {
	t       testing.TB
	w       *world
	dir     string
	src     *snapsource.Source
	store   profiles.Store
	signer  *token.Signer
	key     []byte
	metrics *Metrics
	health  *health.State
	srv     *Server
	ln      *fasthttputil.InmemoryListener
	client  *fasthttp.HostClient
	ring    *eventlog.Ring
	logBuf  syncBuf
	now     func() time.Time // the server's Config.Now
}

func newEnv(tb testing.TB, o envOpts) *env {
	tb.Helper()
	if o.scale == "" {
		o.scale = "small"
	}
	e := &env{t: tb, w: getWorld(tb, o.scale), dir: tb.TempDir()}
	if !o.empty {
		publish(tb, e.dir, e.w.snapshot(tb, baseCreated))
	}
	var err error
	e.src, err = snapsource.New(snapsource.Options{Dir: e.dir, Poll: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.src.Close() })
	switch {
	case o.storeImpl != nil:
		e.store = o.storeImpl
	case o.store == "" || o.store == "file":
		e.store, err = profiles.OpenFile(e.w.profiles)
		if err != nil {
			tb.Fatal(err)
		}
	case o.store == "none":
		e.store = profiles.NewNone()
	default:
		tb.Fatalf("store %q", o.store)
	}
	tb.Cleanup(func() { e.store.Close() })
	e.key = token.GenerateKey()
	e.signer, err = token.NewSigner(e.key, 24*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	e.metrics = NewMetrics()
	e.metrics.RegisterSourceMetrics(e.src)

	if o.accessLog {
		e.ring = eventlog.New(1024)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.ring.Run(ctx, &e.logBuf, 10*time.Millisecond); close(done) }()
		tb.Cleanup(func() { cancel(); <-done })
	}
	cfg := Config{PublicURL: publicURL, Env: o.env, CapQueue: o.capQueue, CapWorkers: 2}
	if o.config != nil {
		o.config(&cfg)
	}
	e.now = cfg.Now
	if e.now == nil {
		e.now = time.Now
	}
	e.srv = New(cfg, e.src, e.store, e.signer, e.metrics, e.ring, health.Config{Build: "test", EventsFn: o.healthEvents})
	e.health = e.srv.Health()
	e.metrics.RegisterServerMetrics(e.srv, nil)
	if !o.noWorkers {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.srv.RunCapWorkers(ctx); close(done) }()
		tb.Cleanup(func() { cancel(); <-done })
	}
	if o.httpServer {
		e.serve()
	}
	return e
}

// serve starts a fasthttp server with main's limits on an in-memory
// listener and a client for it.
func (e *env) serve() {
	e.ln = fasthttputil.NewInmemoryListener()
	fs := &fasthttp.Server{
		Handler:                       e.srv.Handler,
		ErrorHandler:                  ErrorHandler,
		Name:                          "adedge",
		NoDefaultServerHeader:         true,
		ReadTimeout:                   5 * time.Second,
		WriteTimeout:                  5 * time.Second,
		ReadBufferSize:                8192,
		MaxRequestBodySize:            maxRequestBodySize,
		DisableHeaderNamesNormalizing: true,
		CloseOnShutdown:               true,
	}
	done := make(chan struct{})
	go func() { _ = fs.Serve(e.ln); close(done) }()
	e.t.Cleanup(func() {
		_ = fs.Shutdown()
		e.ln.Close()
		<-done
	})
	e.client = &fasthttp.HostClient{
		Addr:         "edge",
		Dial:         func(string) (net.Conn, error) { return e.ln.Dial() },
		MaxConns:     64,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
	}
}

// resp is a finished exchange, copied out of fasthttp's pooled objects.
type resp struct {
	code   int
	body   []byte
	header map[string]string
}

func (r *resp) String() string { return fmt.Sprintf("%d %s", r.code, r.body) }

// do sends one request; body nil means none.
func (e *env) do(method, uri string, body []byte) *resp {
	e.t.Helper()
	r, err := e.try(method, uri, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, uri, err)
	}
	return r
}

func (e *env) try(method, uri string, body []byte) (*resp, error) {
	req := fasthttp.AcquireRequest()
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://edge" + uri)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	if err := e.client.DoTimeout(req, res, 5*time.Second); err != nil {
		return nil, err
	}
	return copyResp(res), nil
}

// copyResp copies a finished response out of fasthttp's pooled object.
func copyResp(res *fasthttp.Response) *resp {
	out := &resp{code: res.StatusCode(), body: append([]byte(nil), res.Body()...), header: map[string]string{}}
	for k, v := range res.Header.All() {
		out.header[strings.ToLower(string(k))] = string(v)
	}
	if res.ConnectionClose() {
		out.header["connection"] = "close"
	}
	return out
}

// rawHeadersOnly sends a request line and headers announcing a body of
// contentLength bytes, sends no body, and reads the answer.
func (e *env) rawHeadersOnly(method, uri string, contentLength int) (*resp, error) {
	return e.rawExchange(method, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, uri, contentLength))
}

// rawLine sends requestURI verbatim on the request line (the fasthttp
// client would rewrite an absolute form or an unnormalised path) and reads
// the answer.
func (e *env) rawLine(method, requestURI string) *resp {
	e.t.Helper()
	r, err := e.rawExchange(method, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: edge\r\n\r\n", method, requestURI))
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, requestURI, err)
	}
	return r
}

// rawExchange writes head on a new connection and reads one answer.
func (e *env) rawExchange(method, head string) (*resp, error) {
	c, err := e.ln.Dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		return nil, err
	}
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(res)
	res.SkipBody = method == "HEAD"
	if err := res.Read(bufio.NewReader(c)); err != nil {
		return nil, err
	}
	return copyResp(res), nil
}

func (e *env) get(uri string) *resp { e.t.Helper(); return e.do("GET", uri, nil) }

// adResponse is the 200 body of /v1/ad.
type adResponse struct {
	RequestID string `json:"request_id"`
	Campaign  string `json:"campaign"`
	Creative  struct {
		ID              string `json:"id"`
		Format          string `json:"format"`
		Width           int    `json:"width"`
		Height          int    `json:"height"`
		AssetURL        string `json:"asset_url"`
		ADomain         string `json:"adomain"`
		Interstitial    bool   `json:"interstitial"`
		Rewarded        bool   `json:"rewarded"`
		DurationSeconds int    `json:"duration_seconds"`
		VAST            string `json:"vast"`
	} `json:"creative"`
	ImpressionURL string `json:"impression_url"`
	ClickURL      string `json:"click_url"`
	PriceMicros   int64  `json:"price_micros"`
	ECPMMicros    int64  `json:"ecpm_micros"`
	Bucket        struct {
		Env        string `json:"env"`
		Experiment string `json:"experiment"`
		Test       string `json:"test"`
		Variant    string `json:"variant"`
		Layers     []struct {
			Layer, Test, Variant string
		} `json:"layers"`
	} `json:"bucket"`
	Snapshot string `json:"snapshot"`
}

func decodeAd(tb testing.TB, r *resp) *adResponse {
	tb.Helper()
	if r.code != 200 {
		tb.Fatalf("want 200, got %v", r)
	}
	var ad adResponse
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ad); err != nil {
		tb.Fatalf("decoding %s: %v", r.body, err)
	}
	return &ad
}

// errorBody is the JSON of every 4xx/5xx the handler writes.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

func decodeError(tb testing.TB, r *resp) errorBody {
	tb.Helper()
	if ct := r.header["content-type"]; ct != "application/json" {
		tb.Errorf("error Content-Type %q, want application/json (%v)", ct, r)
	}
	var eb errorBody
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error == "" {
		tb.Fatalf("error body %q: %v", r.body, err)
	}
	return eb
}

// adQuery is one ad request in query form.
type adQuery struct {
	placement, country, os, osv, device string
	campaign                            string // the expected winner (search)
}

func (q adQuery) uri() string {
	s := "/v1/ad?placement=" + q.placement + "&country=" + q.country + "&os=" + q.os
	if q.osv != "" {
		s += "&osv=" + q.osv
	}
	if q.device != "" {
		s += "&device=" + q.device
	}
	return s
}

func (q adQuery) json() []byte {
	m := map[string]string{"placement": q.placement, "country": q.country, "os": q.os}
	if q.osv != "" {
		m["osv"] = q.osv
	}
	if q.device != "" {
		m["device"] = q.device
	}
	b, _ := json.Marshal(m)
	return b
}

// search runs selection over the serving snapshot (no profile, control
// params) for every placement x country x OS and returns the requests whose
// winning campaign satisfies want, best first by the order tried.
func (e *env) search(limit int, want func(r *snapshot.Reader, c *snapshot.Campaign) bool) []adQuery {
	e.t.Helper()
	snap := e.src.Acquire()
	if snap == nil {
		e.t.Fatal("no snapshot")
	}
	defer snap.Release()
	r := snap.R
	var sel selection.Selector
	var res selection.Result
	var out []adQuery
	now := time.Now().Unix()
	for pi := 0; pi < r.NumPlacements() && len(out) < limit; pi++ {
		pl, _ := r.Placement(pi)
		pid := strings.Clone(r.String(pl.ID)) // the mapping may go away before the test ends
		for _, cc := range []string{"US", "GB", "DE", "JP", "BR", "IN", "FR"} {
			ci, _ := snapshot.CountryIndex(cc)
			for _, osName := range []string{"ios", "android"} {
				os, _ := snapshot.ParseOS(osName)
				osv, _ := snapshot.ParseOSVersion("20.0")
				req := selection.Request{Placement: []byte(pid), Country: ci, OS: os, OSVersion: osv,
					DeviceType: snapshot.DevicePhone, Now: now, Seed: 1}
				sel.Select(r, &req, nil, &abtest.Defaults, &res)
				if res.Outcome != selection.Filled {
					continue
				}
				c, _ := r.Campaign(res.Campaign)
				if want(r, &c) && len(out) < limit {
					out = append(out, adQuery{placement: pid, country: cc, os: osName, osv: "20.0", campaign: strings.Clone(r.String(c.ID))})
				}
			}
		}
	}
	if len(out) == 0 {
		e.t.Fatal("search: no request wins a campaign of the wanted kind")
	}
	return out
}

// campaign finds a campaign of the serving snapshot by id.
func (e *env) campaign(id string) snapshot.Campaign {
	e.t.Helper()
	snap := e.src.Acquire()
	defer snap.Release()
	for i := 0; i < snap.R.NumCampaigns(); i++ {
		c, _ := snap.R.Campaign(i)
		if snap.R.String(c.ID) == id {
			return c
		}
	}
	e.t.Fatalf("campaign %q not in snapshot", id)
	return snapshot.Campaign{}
}

// creative returns a creative of the serving snapshot by id, with its
// click URL, and the ids of the creatives of the campaign it belongs to.
type creativeInfo struct {
	id, format, asset, click string
	width, height            int
}

func (e *env) creative(id string) creativeInfo {
	e.t.Helper()
	snap := e.src.Acquire()
	defer snap.Release()
	r := snap.R
	for i := 0; i < r.NumCreatives(); i++ {
		c, _ := r.Creative(i)
		if r.String(c.ID) == id {
			return creativeInfo{id: id, format: c.Format.String(), asset: strings.Clone(r.String(c.AssetURL)), click: strings.Clone(r.String(c.ClickURL)),
				width: int(c.Width), height: int(c.Height)}
		}
	}
	e.t.Fatalf("creative %q not in snapshot", id)
	return creativeInfo{}
}

// campaignCreatives lists the creative ids of campaign id.
func (e *env) campaignCreatives(id string) []string {
	e.t.Helper()
	c := e.campaign(id)
	snap := e.src.Acquire()
	defer snap.Release()
	var ids []string
	l := snap.R.List(c.Creatives)
	for i := 0; i < l.Len(); i++ {
		cr, _ := snap.R.Creative(int(l.At(i)))
		ids = append(ids, strings.Clone(snap.R.String(cr.ID)))
	}
	sort.Strings(ids)
	return ids
}

// metric reads one series from the registry: name plus label pairs.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.metrics.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	e.t.Fatalf("no series %s%v", name, labels)
	return 0
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == k {
			return lp.GetValue() == v
		}
	}
	return false
}

// waitFor polls cond for up to 5 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second) // only a failure waits this long
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testClock is an injectable Config.Now: time moves only when the test
// says so, so a test crosses a frequency-cap window or a token's expiry
// without waiting for it.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := new(testClock)
	c.ns.Store(t.UnixNano())
	return c
}

// Now is the clock's time.
func (c *testClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// tokenOf returns the t= parameter of a tracking URL.
func tokenOf(tb testing.TB, u string) string {
	tb.Helper()
	i := strings.Index(u, "?t=")
	if i < 0 {
		tb.Fatalf("no t= in %q", u)
	}
	return u[i+3:]
}

// trackPath turns an absolute tracking URL into the path+query to request.
func trackPath(tb testing.TB, u string) string {
	tb.Helper()
	if !strings.HasPrefix(u, publicURL+"/") {
		tb.Fatalf("tracking URL %q lacks the public prefix %q", u, publicURL)
	}
	return strings.TrimPrefix(u, publicURL)
}
