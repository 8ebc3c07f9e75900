// Command adedge serves ad requests from the newest verified snapshot in
// --snapshot-dir, reading user profiles from the configured store.
//
// Every flag can also be set through the environment: --profile-timeout is
// ADEDGE_PROFILE_TIMEOUT, and so on (the flag wins when both are given); a
// bad value from either stops it with exit 2 (flags.go).
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/eventlog"
	"github.com/adedge/adedge/server/evloop"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/tcplisten"
	"github.com/adedge/adedge/server/token"
)

// buildVersion is set with -ldflags "-X main.buildVersion=...".
var buildVersion = "dev"

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(cliflag.ExitCode(err)) // already printed: help, or the bad value
	}
	if err := run(context.Background(), cfg, nil); err != nil {
		log.Printf("adedge: %v", err)
		os.Exit(1)
	}
}

// run serves until SIGTERM or SIGINT (or the end of parent, the same drain
// without a signal), reloading snapshots on SIGHUP. ready, if not nil, is
// called once both listeners are bound and the signal handler is installed,
// with their addresses.
func run(parent context.Context, cfg *config, ready func(serving, admin net.Addr)) error {
	log.SetFlags(log.LUTC | log.Ldate | log.Ltime | log.Lmicroseconds)
	e := &edgeApp{cfg: cfg}
	defer e.close()
	if err := e.build(); err != nil {
		return err
	}
	return e.serve(parent, ready)
}

// edgeApp is one running edge: what build made and started, in the order
// close undoes it.
type edgeApp struct {
	cfg      *config
	ctx      context.Context // ends when run returns: background loops
	closers  []func()        // run last first by close
	src      *snapsource.Source
	store    profiles.Store
	hs       *health.State
	srv      *edge.Server
	logFile  *reopenFile // reopened on SIGHUP
	drainReq chan struct{}
	ln       net.Listener
	adminLn  net.Listener
	agentLn  net.Listener
	http     *fasthttp.Server
	loop     *evloop.Server // --serve-loop events: instead of http and ln
	admin    *http.Server
	// stopWorkers ends the cap workers and the access-log writer after the
	// last request, waiting for both (the drain's last step).
	stopWorkers []func()
}

func (e *edgeApp) onClose(f func()) { e.closers = append(e.closers, f) }

func (e *edgeApp) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// background starts loop on a context of its own; the returned stop
// cancels it and waits for loop to return.
func background(loop func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// build opens everything the edge needs (key, profile store, access log,
// snapshot source, health, A/B, distribution, listeners) and starts their
// background loops; nothing serves requests yet.
func (e *edgeApp) build() error {
	cfg := e.cfg
	ctx, stop := context.WithCancel(context.Background())
	e.ctx = ctx
	e.onClose(stop)

	var key []byte
	var err error
	if cfg.tokenKey == "" {
		key = token.GenerateKey()
		log.Printf("WARNING: no --token-key: tracking URLs are signed with a random key and will not verify on other edges or after a restart")
	} else if key, err = token.LoadKey(cfg.tokenKey); err != nil {
		return fmt.Errorf("--token-key: %w", err)
	}
	signer, err := token.NewSigner(key, cfg.tokenTTL)
	if err != nil {
		return err
	}

	store, err := profiles.Open(cfg.profiles)
	if err != nil {
		return fmt.Errorf("--profiles %s: %w", cfg.profiles, err)
	}
	e.onClose(func() { _ = store.Close() })
	if strings.HasPrefix(cfg.profiles, "aerospike://") {
		// A network client may overrun its deadline (dials, a 1 ms floor on
		// socket timeouts); the request must not.
		store = profiles.Bounded(store, cfg.profileMaxPending)
	}
	e.store = store

	ring, err := e.openAccessLog()
	if err != nil {
		return err
	}

	metrics := edge.NewMetrics()
	src, err := snapsource.New(snapsource.Options{
		Dir: cfg.snapshotDir, Poll: cfg.poll, Pin: pinFor(cfg),
		OnSwap: func(old, new string) { log.Printf("snapshot: serving %s (was %q)", new, old) },
		OnReject: func(path string, err error) {
			log.Printf("snapshot: refused %s: %v (the previous snapshot keeps serving)", path, err)
		},
	})
	if err != nil {
		return err
	}
	e.src = src
	e.onClose(func() { _ = src.Close() })
	go src.Run(ctx)
	metrics.RegisterSourceMetrics(src)

	// The health configuration, gathered here from every part that
	// reports to /health; the edge builds the state from it.
	hcfg := health.Config{Build: buildVersion, ProfileStore: store.Name(), Capacity: int64(cfg.capacity), MaxSnapshotAge: cfg.maxSnapshotAge,
		ProfilesFn: func() health.ProfileCounters {
			st := store.Stats()
			return health.ProfileCounters{Gets: st.Gets, Hits: st.Hits, Misses: st.Misses, Timeouts: st.Timeouts, Errors: st.Errors,
				Unreachable: st.Unreachable}
		}}
	ecfg := edge.Config{
		PublicURL: cfg.publicURL, ProfileTimeout: cfg.profileTimeout, Env: cfg.env, MaxScan: cfg.maxScan,
		CapQueue: cfg.capQueue, CapWorkers: cfg.capWorkers,
	}
	abDone, err := cfg.ab.start(&ecfg, metrics.Registry, &hcfg)
	if err != nil {
		return err
	}
	e.onClose(abDone)
	stopEvents, err := cfg.ev.start(&ecfg, cfg.ab.edgeName, cfg.tokenTTL, &hcfg, metrics.Registry)
	if err != nil {
		return err
	}
	e.onClose(stopEvents) // after the serving port stopped: every answered pixel is in the log
	runPacing, err := cfg.pace.start(&ecfg, metrics, &hcfg)
	if err != nil {
		return err
	}
	stopSDK, err := cfg.sdk.start(&ecfg)
	if err != nil {
		return err
	}
	e.onClose(stopSDK)
	stopDist, err := startDistribution(ctx, cfg, src, metrics, &hcfg)
	if err != nil {
		return err
	}
	e.onClose(stopDist)
	srv := edge.New(ecfg, src, store, signer, metrics, ring, hcfg)
	e.srv = srv
	hs := srv.Health()
	e.hs = hs
	// Pacing stops after the last request (its spend is flushed once more).
	stopPacing := runPacing(srv)
	e.stopWorkers = append([]func(){stopPacing}, e.stopWorkers...)
	e.onClose(stopPacing)
	var dropped func() uint64
	if ring != nil {
		dropped = ring.Dropped
	}
	metrics.RegisterServerMetrics(srv, dropped)
	hs.Register(metrics.Registry)
	go hs.Run(ctx, time.Second, health.DefaultWindow)
	if cfg.agentListen != "" {
		if e.agentLn, err = net.Listen("tcp", cfg.agentListen); err != nil {
			return fmt.Errorf("--agent-listen %s: %w", cfg.agentListen, err)
		}
		e.onClose(func() { _ = e.agentLn.Close() })
		go func() { _ = hs.ServeAgent(e.agentLn) }()
	}
	// The cap workers stop after the last request (drain), before the
	// access log's writer (registered first, so it stops last).
	stopCaps := background(srv.RunCapWorkers)
	e.stopWorkers = append([]func(){stopCaps}, e.stopWorkers...)
	e.onClose(stopCaps)

	if e.adminLn, err = net.Listen("tcp", cfg.admin); err != nil {
		return fmt.Errorf("--admin %s: %w", cfg.admin, err)
	}
	e.drainReq = make(chan struct{}, 1) // POST /admin/drain
	adminMux := http.NewServeMux()
	adminMux.Handle("/", edge.AdminHandler(metrics, src))
	hsAdmin := hs.AdminHandler(func() {
		select {
		case e.drainReq <- struct{}{}:
		default:
		}
	})
	for _, p := range []string{"/admin/drain", "/admin/maint", "/admin/health"} {
		adminMux.Handle(p, hsAdmin)
	}
	e.admin = &http.Server{Handler: adminMux, ReadHeaderTimeout: 5 * time.Second}
	e.onClose(func() { _ = e.admin.Close() })
	go func() { _ = e.admin.Serve(e.adminLn) }()

	if cfg.serveLoop == "events" {
		if e.loop, err = newEventLoop(cfg, srv); err != nil {
			return err
		}
		metrics.OpenConnections(e.loop.OpenConnections)
		metrics.ProfileStore(store.Stats)
		return nil
	}
	if e.ln, err = tcplisten.Listen(ctx, cfg.listen, cfg.listenBacklog); err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	// fasthttp sets three deadlines per request; lazily, they cost nothing.
	e.ln = tcplisten.LazyDeadlines(e.ln)
	e.onClose(func() { _ = e.ln.Close() })
	e.http = newHTTPServer(cfg, srv.Handler)
	metrics.OpenConnections(e.http.GetOpenConnectionsCount)
	metrics.ProfileStore(store.Stats)
	return nil
}

// openAccessLog starts the access log's ring and writer (nil ring when
// the log is off).
func (e *edgeApp) openAccessLog() (*eventlog.Ring, error) {
	var out io.Writer
	switch e.cfg.accessLog {
	case "off", "":
		return nil, nil
	case "-":
		out = os.Stderr
	default:
		f, err := openLog(e.cfg.accessLog)
		if err != nil {
			return nil, fmt.Errorf("--access-log: %w", err)
		}
		e.onClose(func() { _ = f.Close() })
		out, e.logFile = f, f
	}
	ring := eventlog.New(1 << 16)
	stop := background(func(ctx context.Context) { ring.Run(ctx, out, 100*time.Millisecond) })
	e.stopWorkers = append(e.stopWorkers, stop)
	e.onClose(stop)
	return ring, nil
}

// serve accepts requests until a stop (parent's end, a signal, POST
// /admin/drain), reloading on SIGHUP, then drains.
func (e *edgeApp) serve(parent context.Context, ready func(serving, admin net.Addr)) error {
	serveErr := make(chan error, 1)
	var addr net.Addr
	if e.loop != nil {
		go func() { serveErr <- e.loop.Serve(e.cfg.listen) }()
		<-e.loop.Ready()
		if addr = e.loop.Addr(); addr == nil {
			return fmt.Errorf("--listen %s: %w", e.cfg.listen, <-serveErr)
		}
	} else {
		addr = e.ln.Addr()
		go func() { serveErr <- e.http.Serve(e.ln) }()
	}
	st := e.src.Stats()
	log.Printf("adedge %s: serving on %s (admin %s, %s loop), snapshot %q, profiles %s, profile timeout %s",
		buildVersion, addr, e.adminLn.Addr(), e.cfg.serveLoop, st.Version, e.store.Name(), e.cfg.profileTimeout)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if ready != nil {
		ready(addr, e.adminLn.Addr())
	}
	for {
		var why fmt.Stringer
		select {
		case err := <-serveErr:
			return err
		case <-parent.Done():
			why = syscall.SIGTERM // the same drain
		case <-e.drainReq:
			why = drainSource("POST /admin/drain")
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				e.reload()
				continue
			}
			why = sig
		}
		return e.drain(why, sigs)
	}
}

// reload is SIGHUP: rescan the snapshot directory, reopen the access log.
func (e *edgeApp) reload() {
	swapped, err := e.src.Reload()
	log.Printf("SIGHUP: reload: swapped=%v err=%v", swapped, err)
	if e.logFile != nil {
		log.Printf("SIGHUP: reopen access log %s: err=%v", e.cfg.accessLog, e.logFile.Reopen())
	}
}

// drain is the stop: /health 503 at once, serve on for --drain-grace (a
// second signal cuts it short), stop accepting, finish in-flight requests
// within --shutdown-timeout, then flush the cap updates and the access log.
func (e *edgeApp) drain(why fmt.Stringer, sigs <-chan os.Signal) error {
	e.hs.Drain()
	drainWait(why, e.cfg.drainGrace, sigs)
	log.Printf("%s: stop accepting, finishing in-flight requests (up to %s)", why, e.cfg.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), e.cfg.shutdownTimeout)
	var err error
	if e.loop != nil {
		err = e.loop.Shutdown(sctx)
	} else {
		err = e.http.ShutdownWithContext(sctx)
	}
	cancel()
	for _, stop := range e.stopWorkers {
		stop()
	}
	_ = e.admin.Close()
	if e.agentLn != nil {
		_ = e.agentLn.Close()
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Printf("stopped cleanly")
	return nil
}

// newHTTPServer is the serving port's fasthttp.Server.
func newHTTPServer(cfg *config, h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       h,
		ErrorHandler:                  edge.ErrorHandler,
		Name:                          "adedge",
		NoDefaultServerHeader:         true,
		ReadTimeout:                   cfg.readTimeout,
		WriteTimeout:                  cfg.writeTimeout,
		IdleTimeout:                   cfg.idleTimeout,
		Concurrency:                   cfg.maxConns,
		MaxConnsPerIP:                 cfg.maxConnsPerIP,
		ReadBufferSize:                cfg.readBuffer,
		MaxRequestBodySize:            maxRequestBodySize,
		DisableHeaderNamesNormalizing: true,
		TCPKeepalive:                  true,
		CloseOnShutdown:               true,
	}
}

// newEventLoop is the serving port's event-loop server (--serve-loop
// events), with the same limits as newHTTPServer's.
func newEventLoop(cfg *config, srv *edge.Server) (*evloop.Server, error) {
	return evloop.New(evloop.Config{
		Handler:                       srv.Handler,
		ErrorHandler:                  edge.ErrorHandler,
		Inline:                        srv.NeverBlocks,
		MaxHeaderBytes:                cfg.readBuffer,
		MaxBodyBytes:                  maxRequestBodySize,
		ReadTimeout:                   cfg.readTimeout,
		WriteTimeout:                  cfg.writeTimeout,
		IdleTimeout:                   cfg.idleTimeout,
		MaxConns:                      cfg.maxConns,
		MaxConnsPerIP:                 cfg.maxConnsPerIP,
		Backlog:                       cfg.listenBacklog,
		DisableHeaderNamesNormalizing: true,
	})
}

// maxRequestBodySize bounds what fasthttp reads of a body (413 and a closed
// connection beyond); the ad handler refuses bodies over adreq.MaxBodyLen
// itself with a JSON 413.
const maxRequestBodySize = 16 << 10
