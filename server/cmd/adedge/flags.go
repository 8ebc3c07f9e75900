package main

import (
	"errors"
	"strings"
	"time"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/selection"
)

// config is every flag of adedge, by area.
type config struct {
	listen, admin, snapshotDir, profiles, tokenKey, publicURL, accessLog, env string
	serveLoop                                                                 string
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
	ev                         eventFlags
	pace                       paceFlags
	sdk                        sdkFlags
}

// Range checks used by several flags.
var (
	positive    = cliflag.Above(time.Duration(0))
	nonNegative = cliflag.AtLeast(time.Duration(0))
	atLeastOne  = cliflag.AtLeast(1)
	port        = cliflag.Between(0, 65535)
)

// newFlags registers every flag of adedge into c.
//
// How to add a flag: one line in its group, with the range it accepts:
//
//	srv.Duration(&c.fooTimeout, "foo-timeout", 50*time.Millisecond, "what it bounds and why", positive)
//
// The check runs at parse time for the flag and its ADEDGE_FOO_TIMEOUT
// variable alike, and a value out of range stops adedge (exit 2) naming
// the variable, the value and what it wants: never turn a bad value into a
// default later. A new area gets its own group from its own file,
//
//	func registerEventFlags(s *cliflag.Set, c *eventFlags) {
//		g := s.Group("Events")
//		g.String(&c.dir, "events-dir", "", "...")
//	}
//
// called below in the order the groups should print in -h, and its fields
// in config. Rules across flags go in s.After. The README's usage block is
// the output of `adedge -h`: `make readme` rewrites it (a test fails when
// it differs).
func newFlags(c *config) *cliflag.Set {
	s := cliflag.New("adedge", "ADEDGE_", "adedge --snapshot-dir DIR [flags]")
	s.About("Serves ad requests from the newest verified snapshot in --snapshot-dir, reading user\nprofiles from the configured store (README.md, docs/API.md, docs/HEALTH.md).")

	srv := s.Group("Serving")
	srv.String(&c.listen, "listen", ":8080", "serving address (ads, tracking, /health)", cliflag.HostPort)
	srv.String(&c.admin, "admin", "127.0.0.1:9090", "admin address (/metrics, pprof, /admin/reload); keep it on loopback", cliflag.HostPort)
	srv.String(&c.env, "env", "production", "environment label: production | staging", cliflag.OneOf("production", "staging"))
	srv.String(&c.accessLog, "access-log", "off", "access log: off | - (stderr) | PATH")
	srv.Duration(&c.readTimeout, "read-timeout", 5*time.Second, "time to read a whole request (slow clients are cut)", positive)
	srv.Duration(&c.writeTimeout, "write-timeout", 5*time.Second, "time to write a response", positive)
	srv.Duration(&c.idleTimeout, "idle-timeout", 60*time.Second, "keep-alive idle limit", positive)
	srv.Duration(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long in-flight requests may take to finish", positive)
	srv.Int(&c.maxConns, "max-conns", 100000, "concurrent connections served; more are refused", atLeastOne)
	srv.Int(&c.maxConnsPerIP, "max-conns-per-ip", 0, "concurrent connections per client IP (0 = unlimited; balancers share IPs)", cliflag.AtLeast(0))
	srv.Int(&c.readBuffer, "read-buffer", 8192, "per-connection read buffer; bounds request headers (431 beyond)", cliflag.AtLeast(1024))
	srv.Int(&c.listenBacklog, "listen-backlog", 4096, "accept queue of the serving port (capped by net.core.somaxconn; ops/sysctl.md); 0 = Go default", cliflag.AtLeast(0))
	srv.String(&c.serveLoop, "serve-loop", "goroutines", "goroutines: fasthttp, a goroutine per connection | events: epoll event loops, one read and one write per request, ads answered in place when the profile store is in memory (docs/DECISIONS.md)", cliflag.OneOf("goroutines", "events"))
	srv.Int(&c.maxScan, "max-scan", selection.DefaultMaxScan, "candidates examined per request", atLeastOne)

	trk := s.Group("Tracking")
	trk.String(&c.tokenKey, "token-key", "", "file with the tracking-token HMAC key (>= 32 bytes, hex or raw); empty = a random key for this process only")
	trk.Duration(&c.tokenTTL, "token-ttl", 24*time.Hour, "how long impression and click URLs stay valid", positive)
	trk.String(&c.publicURL, "public-url", "", "base of tracking URLs as clients reach this edge (default http://<listen>)")
	trk.Int(&c.capQueue, "cap-queue", 65536, "pending frequency-cap updates; a full queue drops and counts", atLeastOne)
	trk.Int(&c.capWorkers, "cap-workers", 4, "goroutines applying frequency-cap updates", atLeastOne)

	prof := s.Group("Profiles")
	prof.String(&c.profiles, "profiles", "none", "profile store: none | file:PATH | aerospike://HOST:PORT/NAMESPACE/SET", profileStore)
	prof.Duration(&c.profileTimeout, "profile-timeout", time.Millisecond, "deadline of one profile read; a miss serves unpersonalised", positive)
	prof.Int(&c.profileMaxPending, "profile-max-pending", 1024, "network profile reads in flight at once; beyond it requests go unpersonalised at once", atLeastOne)

	snap := s.Group("Snapshot")
	snap.String(&c.snapshotDir, "snapshot-dir", "", "directory of <version>.snap files; the newest good one serves (required)")
	snap.Duration(&c.poll, "snapshot-poll", time.Second, "how often to look for a new snapshot (inotify wakes it sooner)", positive)
	s.Require("snapshot-dir")

	addDistFlags(s, &c.dist)
	c.ab.register(s)
	c.ev.register(s)
	c.pace.register(s)
	c.sdk.register(s)

	hl := s.Group("Health and drain")
	hl.String(&c.agentListen, "agent-listen", "", "HAProxy agent-check address (up/ready/drain/maint and a load weight); empty = off")
	hl.Duration(&c.drainGrace, "drain-grace", 5*time.Second, "on SIGTERM or adtool drain, keep serving this long with /health 503 while the balancer takes the edge out", nonNegative)
	hl.Int(&c.capacity, "agent-capacity", 1024, "in-flight requests counted as full load for the agent's weight", atLeastOne)
	hl.Duration(&c.maxSnapshotAge, "health-max-snapshot-age", 0, "report degraded when the snapshot's data is older (0 = no limit)", nonNegative)

	s.After(func() error {
		if c.publicURL == "" {
			host := c.listen
			if strings.HasPrefix(host, ":") {
				host = "127.0.0.1" + host
			}
			c.publicURL = "http://" + host
		}
		c.publicURL = strings.TrimSuffix(c.publicURL, "/")
		if c.serveLoop == "events" && strings.HasPrefix(c.profiles, "aerospike://") {
			return errors.New("--serve-loop events needs an in-memory --profiles (none or file:PATH): with aerospike:// every ad request runs on a goroutine that competes with the loop for the CPU, and under a saturating load 99% of its profile reads were shed; use --serve-loop goroutines (docs/DECISIONS.md)")
		}
		return c.ab.check(c.listen)
	})
	return s
}

// profileStore refuses a --profiles value of no known scheme (the store
// itself checks the rest when it opens).
func profileStore(v string) string {
	switch {
	case v == "none", strings.HasPrefix(v, "file:") && len(v) > len("file:"):
		return ""
	case strings.HasPrefix(v, "aerospike://"):
		if _, err := profiles.ParseAerospikeSpec(v); err == nil {
			return ""
		}
	}
	return "none, file:PATH or aerospike://HOST:PORT/NAMESPACE/SET"
}

// parseFlags reads the environment and args into a config; errors and
// help are already printed (cliflag.ExitCode gives the exit status).
func parseFlags(args []string) (*config, error) {
	c := &config{}
	if err := newFlags(c).Parse(args); err != nil {
		return nil, err
	}
	return c, nil
}
