// Command adedge serves ad requests from the newest verified snapshot in
// --snapshot-dir, reading user profiles from the configured store.
//
// Every flag can also be set through the environment: --profile-timeout is
// ADEDGE_PROFILE_TIMEOUT, and so on (the flag wins when both are given).
package main

import (
	"context"
	"errors"
	"flag"
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
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/eventlog"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/tcplisten"
	"github.com/adedge/adedge/server/token"
)

// buildVersion is set with -ldflags "-X main.buildVersion=...".
var buildVersion = "dev"

type config struct {
	listen, admin, snapshotDir, profiles, tokenKey, publicURL, accessLog, env string
	profileTimeout, readTimeout, writeTimeout, idleTimeout, shutdownTimeout   time.Duration
	tokenTTL, poll                                                            time.Duration
	maxConns, maxConnsPerIP, capQueue, capWorkers, maxScan, readBuffer        int
	profileMaxPending                                                         int
	// Health, drain and the balancer tier (issue 6).
	agentListen                string
	drainGrace, maxSnapshotAge time.Duration
	listenBacklog, capacity    int
	ab                         abFlags
	dist                       distConfig
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("adedge", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", ":8080", "serving address (ads, tracking, /health)")
	fs.StringVar(&c.admin, "admin", "127.0.0.1:9090", "admin address (/metrics, pprof, /admin/reload); keep it on loopback")
	fs.StringVar(&c.snapshotDir, "snapshot-dir", "", "directory of <version>.snap files; the newest good one serves")
	fs.StringVar(&c.profiles, "profiles", "none", "profile store: none | file:PATH | aerospike://HOST:PORT/NAMESPACE/SET")
	fs.DurationVar(&c.profileTimeout, "profile-timeout", time.Millisecond, "deadline of one profile read; a miss serves unpersonalised")
	fs.IntVar(&c.profileMaxPending, "profile-max-pending", 1024, "network profile reads in flight at once; beyond it requests go unpersonalised at once")
	fs.StringVar(&c.tokenKey, "token-key", "", "file with the tracking-token HMAC key (>= 32 bytes, hex or raw); empty = a random key for this process only")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 24*time.Hour, "how long impression and click URLs stay valid")
	fs.StringVar(&c.publicURL, "public-url", "", "base of tracking URLs as clients reach this edge (default http://<listen>)")
	fs.StringVar(&c.env, "env", "production", "environment label: production | staging")
	fs.StringVar(&c.accessLog, "access-log", "off", "access log: off | - (stderr) | PATH")
	fs.DurationVar(&c.readTimeout, "read-timeout", 5*time.Second, "time to read a whole request (slow clients are cut)")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 5*time.Second, "time to write a response")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 60*time.Second, "keep-alive idle limit")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.DurationVar(&c.poll, "snapshot-poll", time.Second, "how often to look for a new snapshot (inotify wakes it sooner)")
	fs.IntVar(&c.maxConns, "max-conns", 100000, "concurrent connections served; more are refused")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", 0, "concurrent connections per client IP (0 = unlimited; balancers share IPs)")
	fs.IntVar(&c.readBuffer, "read-buffer", 8192, "per-connection read buffer; bounds request headers (431 beyond)")
	fs.IntVar(&c.capQueue, "cap-queue", 65536, "pending frequency-cap updates; a full queue drops and counts")
	fs.IntVar(&c.capWorkers, "cap-workers", 4, "goroutines applying frequency-cap updates")
	fs.IntVar(&c.maxScan, "max-scan", 0, "candidates examined per request (0 = default 4096)")
	fs.StringVar(&c.agentListen, "agent-listen", "", "HAProxy agent-check address (up/ready/drain/maint and a load weight); empty = off")
	fs.DurationVar(&c.drainGrace, "drain-grace", 5*time.Second, "on SIGTERM or adtool drain, keep serving this long with /health 503 while the balancer takes the edge out")
	fs.IntVar(&c.listenBacklog, "listen-backlog", 4096, "accept queue of the serving port (capped by net.core.somaxconn; ops/sysctl.md); 0 = Go default")
	fs.IntVar(&c.capacity, "agent-capacity", 1024, "in-flight requests counted as full load for the agent's weight")
	fs.DurationVar(&c.maxSnapshotAge, "health-max-snapshot-age", 0, "report degraded when the snapshot's data is older (0 = no limit)")
	c.ab.register(fs)
	addDistFlags(fs, &c.dist)
	// Environment overrides: ADEDGE_<FLAG> with dashes as underscores.
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv("ADEDGE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))); ok {
			_ = f.Value.Set(v)
		}
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.snapshotDir == "" {
		return nil, errors.New("--snapshot-dir is required")
	}
	if c.env != "production" && c.env != "staging" {
		return nil, fmt.Errorf("--env %q: want production or staging", c.env)
	}
	if c.profileTimeout <= 0 {
		return nil, errors.New("--profile-timeout must be > 0")
	}
	if c.drainGrace < 0 || c.listenBacklog < 0 || c.capacity <= 0 {
		return nil, errors.New("--drain-grace and --listen-backlog must be >= 0, --agent-capacity > 0")
	}
	if c.publicURL == "" {
		host := c.listen
		if strings.HasPrefix(host, ":") {
			host = "127.0.0.1" + host
		}
		c.publicURL = "http://" + host
	}
	c.publicURL = strings.TrimSuffix(c.publicURL, "/")
	if err := c.ab.check(c.listen); err != nil {
		return nil, err
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "adedge: %v\n", err)
		os.Exit(2)
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
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

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
	defer store.Close()
	if strings.HasPrefix(cfg.profiles, "aerospike://") {
		// A network client may overrun its deadline (dials, a 1 ms floor on
		// socket timeouts); the request must not.
		store = profiles.Bounded(store, cfg.profileMaxPending)
	}

	var ring *eventlog.Ring
	logCtx, stopLog := context.WithCancel(context.Background())
	defer stopLog()
	logDone := make(chan struct{})
	var logOut io.Writer
	var logFile *reopenFile // reopened on SIGHUP
	switch cfg.accessLog {
	case "off", "":
	case "-":
		logOut = os.Stderr
	default:
		f, err := openLog(cfg.accessLog)
		if err != nil {
			return fmt.Errorf("--access-log: %w", err)
		}
		defer f.Close()
		logOut, logFile = f, f
	}
	if logOut != nil {
		ring = eventlog.New(1 << 16)
		go func() { ring.Run(logCtx, logOut, 100*time.Millisecond); close(logDone) }()
	} else {
		close(logDone)
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
	defer src.Close()
	go src.Run(ctx)
	metrics.RegisterSourceMetrics(src)

	hs := health.New(buildVersion)
	ecfg := edge.Config{
		PublicURL: cfg.publicURL, ProfileTimeout: cfg.profileTimeout, Env: cfg.env, MaxScan: cfg.maxScan,
		CapQueue: cfg.capQueue, CapWorkers: cfg.capWorkers,
	}
	abDone, err := cfg.ab.start(&ecfg, metrics.Registry, hs)
	if err != nil {
		return err
	}
	defer abDone()
	srv := edge.New(ecfg, src, store, signer, metrics, ring, hs)
	var dropped func() uint64
	if ring != nil {
		dropped = ring.Dropped
	}
	metrics.RegisterServerMetrics(srv, dropped)
	hs.ProfileStore, hs.Capacity, hs.MaxSnapshotAge = store.Name(), int64(cfg.capacity), cfg.maxSnapshotAge
	hs.ProfilesFn = func() health.ProfileCounters {
		st := store.Stats()
		return health.ProfileCounters{Gets: st.Gets, Hits: st.Hits, Misses: st.Misses, Timeouts: st.Timeouts, Errors: st.Errors,
			Unreachable: st.Unreachable}
	}
	hs.Register(metrics.Registry)
	go hs.Run(ctx, time.Second, health.DefaultWindow)
	drainReq := make(chan struct{}, 1) // POST /admin/drain
	var agentLn net.Listener
	if cfg.agentListen != "" {
		if agentLn, err = net.Listen("tcp", cfg.agentListen); err != nil {
			return fmt.Errorf("--agent-listen %s: %w", cfg.agentListen, err)
		}
		defer agentLn.Close()
		go func() { _ = hs.ServeAgent(agentLn) }()
	}
	stopDist, err := startDistribution(ctx, cfg, src, metrics, hs)
	if err != nil {
		return err
	}
	defer stopDist()
	capCtx, stopCaps := context.WithCancel(context.Background())
	defer stopCaps()
	capsDone := make(chan struct{})
	go func() { srv.RunCapWorkers(capCtx); close(capsDone) }()

	adminLn, err := net.Listen("tcp", cfg.admin)
	if err != nil {
		return fmt.Errorf("--admin %s: %w", cfg.admin, err)
	}
	adminMux := http.NewServeMux()
	adminMux.Handle("/", edge.AdminHandler(metrics, src))
	hsAdmin := hs.AdminHandler(func() {
		select {
		case drainReq <- struct{}{}:
		default:
		}
	})
	for _, p := range []string{"/admin/drain", "/admin/maint", "/admin/health"} {
		adminMux.Handle(p, hsAdmin)
	}
	admin := &http.Server{Handler: adminMux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = admin.Serve(adminLn) }()

	ln, err := tcplisten.Listen(ctx, cfg.listen, cfg.listenBacklog)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	fs := newHTTPServer(cfg, srv.Handler)
	metrics.OpenConnections(fs.GetOpenConnectionsCount)
	metrics.ProfileStore(store.Stats)
	st := src.Stats()
	log.Printf("adedge %s: serving on %s (admin %s), snapshot %q, profiles %s, profile timeout %s",
		buildVersion, ln.Addr(), adminLn.Addr(), st.Version, store.Name(), cfg.profileTimeout)

	serveErr := make(chan error, 1)
	go func() { serveErr <- fs.Serve(ln) }()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if ready != nil {
		ready(ln.Addr(), adminLn.Addr())
	}
	for {
		var why fmt.Stringer
		select {
		case err := <-serveErr:
			return err
		case <-parent.Done():
			why = syscall.SIGTERM // the same drain
		case <-drainReq:
			why = drainSource("POST /admin/drain")
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				swapped, err := src.Reload()
				log.Printf("SIGHUP: reload: swapped=%v err=%v", swapped, err)
				if logFile != nil {
					log.Printf("SIGHUP: reopen access log %s: err=%v", cfg.accessLog, logFile.Reopen())
				}
				continue
			}
			why = sig
		}
		hs.Drain()
		drainWait(why, cfg.drainGrace, sigs)
		log.Printf("%s: stop accepting, finishing in-flight requests (up to %s)", why, cfg.shutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		err := fs.ShutdownWithContext(sctx)
		cancel()
		stopCaps()
		<-capsDone
		_ = admin.Close()
		if agentLn != nil {
			_ = agentLn.Close()
		}
		stopLog()
		<-logDone
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		log.Printf("stopped cleanly")
		return nil
	}
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

// maxRequestBodySize bounds what fasthttp reads of a body (413 and a closed
// connection beyond); the ad handler refuses bodies over adreq.MaxBodyLen
// itself with a JSON 413.
const maxRequestBodySize = 16 << 10
