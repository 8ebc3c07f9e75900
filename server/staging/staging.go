// Package staging hands a share of ad requests to the staging pool: either
// forwarding them (staging answers the user; on error or timeout the edge
// serves the request itself) or mirroring them (a copy goes to staging in
// the background, its answer is discarded, the user never waits for it).
//
// It uses fasthttp's LBClient over one HostClient per upstream: keep-alive
// connections, least-loaded balancing, and a short per-request timeout, so
// a slow staging pool costs a staged request at most Timeout before the
// local fallback.
package staging

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// ForwardedHeader marks a request an edge forwarded, so a staging edge
// configured with upstreams of its own never forwards it again.
const ForwardedHeader = "X-Adedge-Forwarded"

// Config configures a Forwarder.
type Config struct {
	// Upstreams are the staging edges, HOST:PORT.
	Upstreams []string
	// Timeout bounds one forwarded request end to end (default 20ms): the
	// user waits at most this long before the local fallback.
	Timeout time.Duration
	// Mirror sends copies and discards the answers instead of forwarding.
	Mirror bool
	// Queue bounds pending mirror copies (default 4096); a full queue
	// drops the copy and counts it. Workers send them (default 4).
	Queue, Workers int
	// MaxConnsPerUpstream bounds keep-alive connections per upstream
	// (default 512).
	MaxConnsPerUpstream int
}

// Forwarder sends staged requests to the staging pool. Safe for concurrent
// use.
type Forwarder struct {
	cfg Config
	lb  *fasthttp.LBClient
	q   chan *fasthttp.Request

	forwarded, fallbacks, mirrored, mirrorDropped, mirrorErrors atomic.Uint64
}

// ParseUpstreams splits "HOST:PORT,HOST:PORT" and checks each address.
func ParseUpstreams(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("staging upstream %q: %w", a, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no staging upstream given")
	}
	return out, nil
}

// New builds a Forwarder. In mirror mode, run Run to send the copies.
func New(cfg Config) (*Forwarder, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("staging: no upstreams")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Millisecond
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.MaxConnsPerUpstream <= 0 {
		cfg.MaxConnsPerUpstream = 512
	}
	f := &Forwarder{cfg: cfg, lb: &fasthttp.LBClient{Timeout: cfg.Timeout}}
	for _, a := range cfg.Upstreams {
		f.lb.Clients = append(f.lb.Clients, &fasthttp.HostClient{
			Addr: a, Name: "adedge-staging", NoDefaultUserAgentHeader: true,
			MaxConns: cfg.MaxConnsPerUpstream, MaxIdleConnDuration: 30 * time.Second,
			ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, MaxConnWaitTimeout: cfg.Timeout,
			DisablePathNormalizing: true,
		})
	}
	if cfg.Mirror {
		f.q = make(chan *fasthttp.Request, cfg.Queue)
	}
	return f, nil
}

// Mirror reports whether the forwarder runs in mirror mode.
func (f *Forwarder) Mirror() bool { return f.cfg.Mirror }

// Forward sends ctx's request to staging and, on success, leaves staging's
// answer in ctx's response. On error it resets the response and returns
// the error: the caller serves the request itself (and counts the
// fallback through Fallbacks). It allocates nothing in steady state: the
// request and response are ctx's own.
func (f *Forwarder) Forward(ctx *fasthttp.RequestCtx) error {
	ctx.Request.Header.Set(ForwardedHeader, "1")
	err := f.lb.DoTimeout(&ctx.Request, &ctx.Response, f.cfg.Timeout)
	ctx.Request.Header.Del(ForwardedHeader)
	if err == nil && ctx.Response.StatusCode() >= 500 {
		err = errStatus
	}
	if err != nil {
		f.fallbacks.Add(1)
		ctx.Response.Reset()
		return err
	}
	f.forwarded.Add(1)
	// Hop-by-hop: the user's connection is ours, not staging's.
	ctx.Response.Header.Del("Connection")
	return nil
}

var errStatus = errors.New("staging answered 5xx")

// Copy queues a copy of ctx's request for staging and returns at once; a
// full queue drops the copy (counted). Only in mirror mode.
func (f *Forwarder) Copy(ctx *fasthttp.RequestCtx) {
	if f.q == nil {
		return
	}
	req := fasthttp.AcquireRequest()
	ctx.Request.CopyTo(req)
	req.Header.Set(ForwardedHeader, "1")
	select {
	case f.q <- req:
	default:
		fasthttp.ReleaseRequest(req)
		f.mirrorDropped.Add(1)
	}
}

// Run sends mirror copies until ctx ends (then it drops what is queued:
// a mirror must not hold up a shutdown).
func (f *Forwarder) Run(ctx context.Context) {
	if f.q == nil {
		<-ctx.Done()
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < f.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			resp.SkipBody = true
			for {
				select {
				case <-ctx.Done():
					return
				case req := <-f.q:
					if err := f.lb.DoTimeout(req, resp, f.cfg.Timeout); err != nil {
						f.mirrorErrors.Add(1)
					} else {
						f.mirrored.Add(1)
					}
					fasthttp.ReleaseRequest(req)
					resp.Reset()
					resp.SkipBody = true
				}
			}
		}()
	}
	wg.Wait()
	for {
		select {
		case req := <-f.q:
			fasthttp.ReleaseRequest(req)
			f.mirrorDropped.Add(1)
		default:
			return
		}
	}
}

// Stats are the forwarder's counters.
type Stats struct {
	Forwarded, Fallbacks, Mirrored, MirrorDropped, MirrorErrors uint64
}

// Stats returns the counters so far.
func (f *Forwarder) Stats() Stats {
	return Stats{f.forwarded.Load(), f.fallbacks.Load(), f.mirrored.Load(), f.mirrorDropped.Load(), f.mirrorErrors.Load()}
}

// IsForwarded reports whether a request came from another edge's
// forwarder (and so must be served here, not forwarded again).
func IsForwarded(ctx *fasthttp.RequestCtx) bool {
	return len(ctx.Request.Header.Peek(ForwardedHeader)) > 0
}

// Register exports the forwarder's counters as Prometheus series.
func (f *Forwarder) Register(reg prometheus.Registerer) {
	for _, m := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"adedge_staging_forwarded_total", "Requests staging answered for this edge.", &f.forwarded},
		{"adedge_staging_fallbacks_total", "Staged requests served here because staging failed or timed out.", &f.fallbacks},
		{"adedge_staging_mirrored_total", "Mirror copies staging received.", &f.mirrored},
		{"adedge_staging_mirror_dropped_total", "Mirror copies dropped because the queue was full.", &f.mirrorDropped},
		{"adedge_staging_mirror_errors_total", "Mirror copies staging failed to take.", &f.mirrorErrors},
	} {
		v := m.v
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help},
			func() float64 { return float64(v.Load()) }))
	}
}
