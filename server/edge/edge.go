// Package edge is the serving side of adedge: fasthttp handlers for ad
// requests, impression and click tracking, and /health, wired to a
// hot-swappable snapshot, a profile store and a tracking-token signer.
//
// The ad path parses, reads the profile under a deadline, selects, and
// encodes the response into pooled buffers; it takes no lock shared across
// requests (snapshot references are atomics, counters are Prometheus
// atomics, logging goes through a lock-free ring).
package edge

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/server/adreq"
	"github.com/adedge/adedge/server/eventlog"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/geo"
	"github.com/adedge/adedge/server/ortb"
	"github.com/adedge/adedge/server/pacing"
	"github.com/adedge/adedge/server/privacy"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/staging"
	"github.com/adedge/adedge/server/token"
)

// Config is the edge's serving configuration.
type Config struct {
	// PublicURL prefixes tracking URLs ("https://ads.example.com"); the SDK
	// fires them, so it must be the address clients reach.
	PublicURL string
	// ProfileTimeout is the profile read's own deadline; a miss serves the
	// ad unpersonalised. Default 1 ms.
	ProfileTimeout time.Duration
	// Env labels the responses and tokens ("production" or "staging").
	Env string
	// MaxScan bounds candidates examined per request (selection.DefaultMaxScan).
	MaxScan int
	// CapQueue bounds pending frequency-cap updates; CapWorkers drain it.
	CapQueue, CapWorkers int
	// CapTimeout is the deadline of one cap update against the store.
	CapTimeout time.Duration
	// Counters, if set, count every ad request and tracking event per A/B
	// bucket (issue 5: docs/REPORTS.md).
	Counters *abtest.Counters
	// Staging picks the devices whose requests Forwarder sends to the
	// staging pool; both nil = no staging traffic.
	Staging   *abtest.Staging
	Forwarder *staging.Forwarder
	// Privacy is the edge's privacy policy (its TCF vendor id); every ad
	// request's signals go through it (docs/PRIVACY.md).
	Privacy privacy.Policy
	// Geo, if set, finds the country of a request that does not give one;
	// TrustedProxies are the balancers whose X-Forwarded-For is believed.
	Geo            *geo.DB
	TrustedProxies geo.Proxies
	// Events, if set, records every decision, impression and click in the
	// durable event log; a pixel is answered only once its event is
	// recorded (docs/EVENTS.md). EdgeName labels the records.
	Events   *events.Recorder
	EdgeName string
	// Pacing, if set, throttles budgeted campaigns and counts their spend
	// (issue 11: docs/PACING.md); RunPacing drives it.
	Pacing *pacing.Service
	// Now is the wall clock the edge decides by: frequency-cap windows,
	// token issue and expiry, campaign flights, event and log times,
	// /health ages. Default time.Now; tests inject one to cross a cap
	// window or expire a token without waiting. Latencies are measured on
	// the real monotonic clock whatever Now is.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.ProfileTimeout <= 0 {
		c.ProfileTimeout = time.Millisecond
	}
	if c.Env == "" {
		c.Env = "production"
	}
	if c.CapQueue <= 0 {
		c.CapQueue = 65536
	}
	if c.CapWorkers <= 0 {
		c.CapWorkers = 4
	}
	if c.CapTimeout <= 0 {
		c.CapTimeout = 50 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// requestStart is when fasthttp handed ctx to the handler: it reads the
// clock for ctx.Time on every request anyway, and a clock read is 43-53
// ns on this kind of VM (docs/BENCHMARKS.md, "clock reads"). A ctx not
// served by a fasthttp.Server (handler tests and benchmarks) has no time:
// then the clock is read here.
func requestStart(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// wallNow is the decision clock for a request that started at start: start
// itself on the real clock (one clock read fewer per request), Config.Now
// when a test injected one.
func (s *Server) wallNow(start time.Time) time.Time {
	if s.realClock {
		return start
	}
	return s.cfg.Now()
}

// Server handles the serving port.
type Server struct {
	cfg   Config
	src   *snapsource.Source
	store profiles.Store
	// realClock: Config.Now is time.Now (not injected), so a request's
	// start time is also its decision time (wallNow).
	realClock bool
	// memStore: the store answers from memory (profiles.InMemory), so a
	// request needs no deadline context for it.
	memStore bool
	signer   *token.Signer
	metrics  *Metrics
	log      *eventlog.Ring // may be nil
	events   eventLimits
	health   *health.State
	sel      selection.Selector

	envCode  uint8
	inFlight atomic.Int64
	reqSeq   atomic.Uint64
	reqSalt  uint64
	capQ     chan capUpdate
	pool     sync.Pool // *reqState
	exp      atomic.Pointer[expInfo]
	expPrev  atomic.Pointer[expInfo] // the one exp replaced: requests that acquired the old snapshot keep its memo
	// answerBudget caps each snapshot's memoised creative JSON (answer.go).
	answerBudget int64

	// envHeader is X-Adedge-Env's value and publicJSON PublicURL escaped
	// for a JSON string, made once: every response writes them.
	envHeader  []byte
	publicJSON string
}

// reqState is the per-request scratch memory, pooled.
type reqState struct {
	req     adreq.Request
	scratch adreq.Scratch
	prof    profiles.Profile
	sreq    selection.Request
	res     selection.Result
	claims  token.Claims // Verify's target: keeps its decode buffer across requests
	sign    token.Claims // Append's input: aliases snapshot and request bytes
	buf     []byte
	tok     []byte
	line    []byte
	qbuf    []byte // decoded query values of GET /v1/ad (adreq.ParseRawQuery)
	evs     eventState
	auc     auctionState   // POST /openrtb2/auction (auction.go)
	ans     creativeAnswer // a fill's creative part when the memo cannot hold it
}

// New wires a Server. log may be nil (no access log). hc is the edge's
// health configuration as the caller assembled it; the server adds what
// only it knows (requests in flight, the snapshot in service) and builds
// the health state from it once (Health).
func New(cfg Config, src *snapsource.Source, store profiles.Store, signer *token.Signer, m *Metrics, log *eventlog.Ring, hc health.Config) *Server {
	realClock := cfg.Now == nil // before defaults() fills it with time.Now
	cfg.defaults()
	s := &Server{cfg: cfg, src: src, store: store, signer: signer, metrics: m, log: log, realClock: realClock,
		sel: selection.Selector{MaxScan: cfg.MaxScan, Pacing: cfg.Pacing}, capQ: make(chan capUpdate, cfg.CapQueue)}
	_, s.memStore = store.(profiles.InMemory)
	s.answerBudget = defaultAnswerBudget
	if cfg.Env == "staging" {
		s.envCode = 1
	}
	s.envHeader = []byte(cfg.Env)
	s.publicJSON = string(appendJSONStringBody(nil, cfg.PublicURL))
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.reqSalt = binary.LittleEndian.Uint64(b[:])
	s.pool.New = func() any { return &reqState{buf: make([]byte, 0, 2048)} }
	hc.InFlightFn = s.inFlight.Load
	hc.SnapshotFn = func() (health.Snapshot, bool) {
		snap := src.Acquire()
		if snap == nil {
			return health.Snapshot{}, false
		}
		defer snap.Release()
		return health.Snapshot{Version: snap.Version, Created: snap.Created}, true
	}
	s.health = health.New(hc)
	return s
}

// Health is the server's health state: /health, the agent, drain and
// maintenance.
func (s *Server) Health() *health.State { return s.health }

// InFlight is the number of requests being served.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Handler is the fasthttp entry point for the serving port.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if s.health.Draining() {
		// Keep-alive clients reconnect, and the balancer (IPVS keeps
		// established connections on a drained edge) sends them elsewhere.
		ctx.SetConnectionClose()
	}
	path, query := target(ctx)
	switch string(path) { // the compiler does not allocate for this conversion
	case "/v1/ad":
		s.metrics.httpRequests[endpointAd].Inc()
		if !ctx.IsGet() && !ctx.IsPost() {
			methodNotAllowed(ctx, "GET, POST")
			return
		}
		s.serveAd(ctx, query)
	case "/openrtb2/auction":
		s.metrics.httpRequests[endpointAuction].Inc()
		if !ctx.IsPost() {
			methodNotAllowed(ctx, "POST")
			return
		}
		s.serveAuction(ctx)
	case "/v1/video":
		s.metrics.httpRequests[endpointVideo].Inc()
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		s.serveVideo(ctx)
	case "/v1/win":
		s.metrics.httpRequests[endpointWin].Inc()
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		s.serveWin(ctx)
	case "/v1/imp":
		s.metrics.httpRequests[endpointImp].Inc()
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		s.serveTrack(ctx, false)
	case "/v1/click":
		s.metrics.httpRequests[endpointClick].Inc()
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		s.serveTrack(ctx, true)
	case "/health":
		s.metrics.httpRequests[endpointHealth].Inc()
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		s.serveHealth(ctx)
	default:
		s.metrics.httpRequests[endpointOther].Inc()
		jsonError(ctx, fasthttp.StatusNotFound, "no such endpoint: see docs/API.md", "")
	}
}

func (s *Server) serveHealth(ctx *fasthttp.RequestCtx) {
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)
	var code int
	st.buf, code = s.health.AppendJSON(st.buf[:0], s.cfg.Now())
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(st.buf)
}

// ErrorHandler is the serving fasthttp.Server's ErrorHandler: it answers
// requests fasthttp refuses before Handler runs in the same JSON as the
// handler's own errors, with the status that names the problem (fasthttp's
// default answers a body over MaxRequestBodySize with a text/plain 400
// "Error when parsing request"). fasthttp closes the connection after it.
func ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		limit := adreq.MaxBodyLen
		if string(ctx.Path()) == "/openrtb2/auction" {
			limit = ortb.MaxBodyLen
		}
		jsonError(ctx, fasthttp.StatusRequestEntityTooLarge, "body over "+strconv.Itoa(limit)+" bytes", "body")
	case errors.As(err, &small):
		jsonError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large", "")
	case errors.As(err, &nerr) && nerr.Timeout():
		jsonError(ctx, fasthttp.StatusRequestTimeout, "request not received in time", "")
	default:
		jsonError(ctx, fasthttp.StatusBadRequest, "malformed HTTP request", "")
	}
}

// headerEnv names the environment that answered (docs/API.md).
var headerEnv = []byte("X-Adedge-Env")

// setEnvHeader sets X-Adedge-Env without normalising the name per request.
func (s *Server) setEnvHeader(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetCanonical(headerEnv, s.envHeader)
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	jsonError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed; use "+allow, "")
}

// jsonError writes {"error": msg, "field": field} with code.
func jsonError(ctx *fasthttp.RequestCtx, code int, msg, field string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	b := ctx.Response.BodyWriter()
	buf := make([]byte, 0, 96+len(msg))
	buf = append(buf, `{"error":`...)
	buf = appendJSONString(buf, msg)
	if field != "" {
		buf = append(buf, `,"field":`...)
		buf = appendJSONString(buf, field)
	}
	buf = append(buf, '}')
	_, _ = b.Write(buf)
}

// expInfo caches the serving snapshot's experiment set: its bucketer and
// the counter generations of this edge's env and of staging fallbacks.
type expInfo struct {
	version  string
	id       string
	params   abtest.Params
	bucketer *abtest.Bucketer
	gen      *abtest.Generation // nil without Counters
	stageGen *abtest.Generation // forward errors, counted as staging's
	answers  *answers           // memoised JSON of this snapshot's fills
}

// RunCapWorkers drains the frequency-cap queue into the store until ctx
// ends, then finishes what is queued (bounded by CapTimeout per update).
func (s *Server) RunCapWorkers(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.CapWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case u := <-s.capQ:
					s.applyCap(u)
				case <-ctx.Done():
					for {
						select {
						case u := <-s.capQ:
							s.applyCap(u)
						default:
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

type capUpdate struct {
	device, campaign string
	period           uint32
	now              int64
}

func (s *Server) applyCap(u capUpdate) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CapTimeout)
	defer cancel()
	if err := s.store.IncrementCap(ctx, u.device, u.campaign, u.period, u.now); err != nil {
		s.metrics.capUpdates["error"].Inc()
		s.event("cap_update_error", err)
		return
	}
	s.metrics.capUpdates["ok"].Inc()
}

// event logs an event line through the ring, at most one per name per
// eventEvery: the lines come from failures that can hit every request (a
// store returning errors), and formatting one per request cost more than
// the request. The next line written says how many were suppressed.
func (s *Server) event(name string, err error) {
	if s.log == nil {
		return
	}
	suppressed, ok := s.events.allow(name, s.cfg.Now().UnixNano())
	if !ok {
		return
	}
	b := make([]byte, 0, 128)
	b = s.cfg.Now().UTC().AppendFormat(b, time.RFC3339)
	b = append(b, " event="...)
	b = append(b, name...)
	if err != nil {
		b = append(b, " err="...)
		b = strconv.AppendQuote(b, err.Error())
	}
	if suppressed > 0 {
		b = append(b, " suppressed="...)
		b = strconv.AppendUint(b, suppressed, 10)
	}
	s.log.Write(b)
}

// eventEvery is the shortest gap between two lines of one event name.
const eventEvery = time.Second

// eventLimits rate-limits event lines per name, lock-free once a name has
// been seen (a sync.Map lookup by string does not allocate).
type eventLimits struct{ m sync.Map }

type eventLimit struct {
	next    atomic.Int64 // unix nanos before which lines are suppressed
	dropped atomic.Uint64
}

// allow reports whether a line for name may be written at now, and how
// many were suppressed since the last one.
func (l *eventLimits) allow(name string, now int64) (suppressed uint64, ok bool) {
	v, found := l.m.Load(name)
	if !found {
		v, _ = l.m.LoadOrStore(name, new(eventLimit))
	}
	e := v.(*eventLimit)
	next := e.next.Load()
	if now < next || !e.next.CompareAndSwap(next, now+int64(eventEvery)) {
		e.dropped.Add(1)
		return 0, false
	}
	return e.dropped.Swap(0), true
}

// NeverBlocks reports whether ctx's request is answered without waiting
// on anything outside the process, so an event loop may run it in place
// (server/evloop): ads, auctions, video and /health when the profile store
// answers from memory (or there is none) and no staging traffic is
// forwarded. Pixels wait for the event log's fsync, a remote store for the
// network: those run on a goroutine.
func (s *Server) NeverBlocks(ctx *fasthttp.RequestCtx) bool {
	path, _ := target(ctx)
	switch string(path) {
	case "/health":
		return true
	case "/v1/ad", "/openrtb2/auction", "/v1/video":
		return (s.store == nil || s.memStore) && s.cfg.Forwarder == nil
	}
	return false
}
