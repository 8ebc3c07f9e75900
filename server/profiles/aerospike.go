package profiles

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"
	"github.com/aerospike/aerospike-client-go/v7/types"
)

// Record layout (documented in docs/PROFILES.md; keep both in sync).
const (
	BinSegments = "seg"  // list of strings
	BinApps     = "apps" // list of int64: AppHash bit patterns
	BinCaps     = "caps" // key-ordered map "campaignID:windowStart" -> count
)

// getBins is shared so Get passes bin names without allocating.
var getBins = []string{BinSegments, BinApps, BinCaps}

// Defaults for AerospikeConfig fields left zero.
const (
	// DefaultReadTimeout is the client's budget for a read whose context has
	// no deadline, which is how Bounded runs it: the request stops waiting
	// at --profile-timeout, the read may finish (and keep its pooled
	// connection) for this long.
	DefaultReadTimeout    = 25 * time.Millisecond
	DefaultWriteTimeout   = 100 * time.Millisecond
	DefaultConnectTimeout = 2 * time.Second
	DefaultMinConns       = 16
	DefaultMaxConns       = 256
)

// TTLNever, as AerospikeConfig.TTL, makes written records never expire.
const TTLNever = time.Duration(-1)

// AerospikeConfig says where profiles live and how hard to try. Build it
// with ParseAerospikeSpec or by hand; zero fields take the defaults above.
type AerospikeConfig struct {
	Hosts     []string // "host:port" seeds
	Namespace string
	Set       string

	// ReadTimeout bounds Get when its context has no deadline.
	ReadTimeout time.Duration
	// WriteTimeout bounds IncrementCap and PutProfile when their context
	// has no deadline.
	WriteTimeout time.Duration
	// ConnectTimeout bounds cluster discovery in OpenAerospike and the
	// tend (info) requests afterwards.
	ConnectTimeout time.Duration
	// TTL is the record time-to-live set by every write (cap increments
	// included): 0 = the namespace's default-ttl, TTLNever = never expire.
	TTL time.Duration
	// MinConns connections per node are opened at start and kept open so
	// the first requests don't pay for a TCP handshake.
	MinConns int
	// MaxConns bounds connections per node; when all are busy a request
	// fails at once instead of queueing past its deadline.
	MaxConns int
}

// ParseAerospikeSpec parses
//
//	aerospike://HOST:PORT[,HOST:PORT...]/NAMESPACE/SET[?OPTION=VALUE&...]
//
// Options: timeout, write_timeout, connect_timeout (Go durations), ttl (a
// duration, 0 for the namespace default or -1 for never), min_conns,
// max_conns. Errors name the part of the spec that is wrong.
func ParseAerospikeSpec(spec string) (AerospikeConfig, error) {
	const want = "want aerospike://HOST:PORT[,HOST:PORT...]/NAMESPACE/SET"
	bad := func(format string, args ...any) (AerospikeConfig, error) {
		return AerospikeConfig{}, fmt.Errorf("profiles: store spec %q: %s", spec, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(spec, "aerospike://")
	if !ok {
		return bad("%s", want)
	}
	rest, query, _ := strings.Cut(rest, "?")
	hostPart, path, _ := strings.Cut(rest, "/")
	var cfg AerospikeConfig
	if hostPart == "" {
		return bad("no hosts (%s)", want)
	}
	for _, h := range strings.Split(hostPart, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			return bad("host %q: want HOST:PORT", h)
		}
		if host == "" {
			return bad("host %q: empty host name", h)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return bad("host %q: port must be 1-65535", h)
		}
		cfg.Hosts = append(cfg.Hosts, h)
	}
	parts := strings.Split(path, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return bad("need /NAMESPACE/SET after the hosts (%s)", want)
	}
	cfg.Namespace, cfg.Set = parts[0], parts[1]
	if len(cfg.Namespace) > 31 {
		return bad("namespace %q longer than 31 bytes", cfg.Namespace)
	}
	if len(cfg.Set) > 63 {
		return bad("set %q longer than 63 bytes", cfg.Set)
	}
	if query == "" {
		return cfg, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return bad("options: %v", err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "timeout":
			cfg.ReadTimeout, err = positiveDuration(v)
		case "write_timeout":
			cfg.WriteTimeout, err = positiveDuration(v)
		case "connect_timeout":
			cfg.ConnectTimeout, err = positiveDuration(v)
		case "ttl":
			if v == "-1" {
				cfg.TTL = TTLNever
				break
			}
			cfg.TTL, err = time.ParseDuration(v)
			if err == nil && (cfg.TTL < 0 || cfg.TTL > math.MaxUint32*time.Second/2) {
				err = errors.New("want 0, -1 or a positive duration")
			}
			if err == nil && cfg.TTL > 0 && cfg.TTL < time.Second {
				err = errors.New("ttl below 1s")
			}
		case "min_conns":
			cfg.MinConns, err = strconv.Atoi(v)
			if err == nil && cfg.MinConns < 0 {
				err = errors.New("negative")
			}
		case "max_conns":
			cfg.MaxConns, err = strconv.Atoi(v)
			if err == nil && cfg.MaxConns < 1 {
				err = errors.New("want at least 1")
			}
		default:
			return bad("unknown option %q (known: timeout, write_timeout, connect_timeout, ttl, min_conns, max_conns)", k)
		}
		if err != nil {
			return bad("option %s=%q: %v", k, v, err)
		}
	}
	return cfg, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.New("want a positive duration such as 2ms")
	}
	return d, err
}

// AerospikeStore reads profiles from and counts caps in Aerospike through
// the official v7 client. See docs/PROFILES.md for the record layout.
type AerospikeStore struct {
	counters
	cfg    AerospikeConfig
	name   string
	client *as.Client
	closed atomic.Bool

	readTemplate as.BasePolicy
	writeTTL     uint32
	capPolicy    *as.MapPolicy
	policies     sync.Pool // *as.BasePolicy for Get, to spare an allocation
	keys         sync.Pool // *as.Key of the store's namespace and set for Get: SetValue re-keys one without as.NewKey's three allocations
	brk          breaker
	inflight     atomic.Int64           // client calls running (see connectionFailure)
	dialing      atomic.Bool            // a reachableByDial check is running
	aliveAt      atomic.Int64           // unix nanos of the last dial check that connected
	dialErr      atomic.Pointer[string] // the last failed check's error
}

// Stats implements Store, adding the breaker's state.
func (s *AerospikeStore) Stats() Stats {
	st := s.counters.Stats()
	st.Unreachable = s.brk.open()
	st.Shed = s.brk.shed.Load()
	st.BreakerTrips = s.brk.trips.Load()
	return st
}

// connectionFailure reports errors that mean the node cannot be reached
// (as opposed to slow or overloaded): they feed the breaker. No free
// connection (NO_AVAILABLE_CONNECTIONS_TO_NODE) means either: with few
// reads in flight the pool is empty because dials fail (dead node); with
// at least half of max_conns in flight it is exhausted by load, and
// counting that made a saturated edge shed 99.7% of its reads as if the
// store were down (Bounded's adaptive limit handles overload).
func (s *AerospikeStore) connectionFailure(aerr as.Error) bool {
	if aerr.Matches(types.NO_AVAILABLE_CONNECTIONS_TO_NODE) && s.inflight.Load() >= int64(s.cfg.MaxConns)/2 {
		return false
	}
	return aerr.Matches(types.SERVER_NOT_AVAILABLE, types.INVALID_NODE_ERROR, types.NETWORK_ERROR, types.NO_AVAILABLE_CONNECTIONS_TO_NODE)
}

// poolWait is how long a read that found the pool empty waits before it
// looks again (the client's SleepBetweenRetries for reads).
const poolWait = 250 * time.Microsecond

// aliveFor is how long a dial check that connected vouches for the node:
// within it, the run of connection failures is broken without another
// dial (a live node whose pool keeps running dry would otherwise get a
// connect and close every eight failed reads).
const aliveFor = 50 * time.Millisecond

// connFailure counts a connection-class failure towards the breaker, but
// the one that would trip it first checks the node by dialling it: an
// empty pool looks the same on a dead node and on a live one whose pool is
// still growing under load (the client dials in the background and fails
// the read at once), and counting the live case shed 99% of the reads of
// a real server that answered every read it got
// (TestBreakerLiveNodeBusyPool). A dead node refuses the dial (or lets it
// time out) and the breaker trips as before (TestBreakerDeadNode). While
// one check runs, other failures are not counted.
func (s *AerospikeStore) connFailure(now int64) {
	if s.brk.nextTrips() {
		if now-s.aliveAt.Load() < int64(aliveFor) {
			s.brk.reachable()
			return
		}
		if !s.dialing.CompareAndSwap(false, true) {
			return
		}
		alive := s.reachableByDial()
		s.dialing.Store(false)
		if alive {
			s.aliveAt.Store(time.Now().UnixNano())
			s.brk.reachable()
			return
		}
	}
	s.brk.failure(now)
}

// reachableByDial reports whether a TCP connection to a seed host opens
// within the connect timeout; it is closed at once. A killed server's
// host refuses at once. A live one may take long: the real server under
// 96 concurrent readers whose pool kept emptying (each read timing out
// closes its connection) took 0.1-860 ms to accept, 88 checks in one run
// of TestBreakerLiveNodeBusyPool; with a 50 ms limit the check called it
// dead. A failed dial is tried once more after redialWait: once in five
// CI runs on 2026-12-04 a live node under that test's churn failed one
// dial at once and the breaker shed 85% of its reads, while a dead node
// refuses both. The last failure's error is kept for the operator and
// the tests (lastDialError). It runs on the failing read's goroutine
// (Bounded's background read), never a request's.
func (s *AerospikeStore) reachableByDial() bool {
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			time.Sleep(redialWait)
		}
		for _, h := range s.cfg.Hosts {
			c, err := net.DialTimeout("tcp", h, s.cfg.ConnectTimeout)
			if err == nil {
				c.Close()
				return true
			}
			msg := err.Error()
			s.dialErr.Store(&msg)
		}
	}
	return false
}

// redialWait separates the two dials of reachableByDial.
const redialWait = 20 * time.Millisecond

// lastDialError is the error of the last failed reachability dial ("" if
// none failed).
func (s *AerospikeStore) lastDialError() string {
	if p := s.dialErr.Load(); p != nil {
		return *p
	}
	return ""
}

// noteConnError feeds the breaker what aerr says about the node's
// reachability, for reads and writes alike: a sent command that timed out
// breaks the run of connection failures, a connection failure counts
// towards it. False when aerr says neither.
func (s *AerospikeStore) noteConnError(aerr as.Error, now int64) bool {
	switch {
	case sentAndTimedOut(aerr):
		s.brk.reachable()
	case s.connectionFailure(aerr):
		s.connFailure(now)
	default:
		return false
	}
	return true
}

// sentAndTimedOut reports a read that had a connection and timed out
// waiting for its answer: a slow node, not a dead one (a dead node's port
// refuses or resets, and its reads end with no connection to be had). Each
// such timeout closes its connection, so a slow node also empties the pool
// and some reads find none; those still count towards the breaker, but
// only an unbroken run of them trips it. Counting them across the timeouts
// between them made a node answering after the read timeout trip the
// breaker after a few hundred reads (TestAerospikeSlowServerIsNotDead) and
// shed every read for its open window, as if it were down. The client
// reports a socket deadline as TIMEOUT, wrapped in NETWORK_ERROR or
// MAX_RETRIES_EXCEEDED depending on the path; what sets it apart is that
// no attempt in the chain lacked a connection.
func sentAndTimedOut(aerr as.Error) bool {
	return aerr.Matches(types.TIMEOUT) && !aerr.Matches(types.NO_AVAILABLE_CONNECTIONS_TO_NODE)
}

// OpenAerospike connects to the cluster, checks that it serves the
// namespace and opens cfg.MinConns connections per node.
func OpenAerospike(cfg AerospikeConfig) (*AerospikeStore, error) {
	if len(cfg.Hosts) == 0 || cfg.Namespace == "" || cfg.Set == "" {
		return nil, errors.New("profiles: aerospike: hosts, namespace and set are required")
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MinConns == 0 {
		cfg.MinConns = DefaultMinConns
	}
	// The client panics if min > max; one connection is kept for tending.
	cfg.MinConns = min(cfg.MinConns, cfg.MaxConns-1)

	s := &AerospikeStore{
		cfg:  cfg,
		name: fmt.Sprintf("aerospike://%s/%s/%s", strings.Join(cfg.Hosts, ","), cfg.Namespace, cfg.Set),
	}
	hosts := make([]*as.Host, 0, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			return nil, fmt.Errorf("profiles: aerospike: host %q: %w", h, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("profiles: aerospike: host %q: bad port", h)
		}
		hosts = append(hosts, as.NewHost(host, p))
	}

	cp := as.NewClientPolicy()
	cp.Timeout = cfg.ConnectTimeout
	cp.ConnectionQueueSize = cfg.MaxConns
	cp.MinConnectionsPerNode = cfg.MinConns
	cp.LimitConnectionsToQueueSize = true
	cp.FailIfNotConnected = true
	// The client's circuit breaker fails every command to a node for the
	// rest of a tend interval after 100 errors, timeouts included. With a
	// sub-millisecond budget at tens of thousands of reads a second, a 1%
	// timeout rate trips it and turns a blip into a second of misses. The
	// edge sheds load itself (Bounded caps pending reads), so the breaker
	// is off.
	cp.MaxErrorRate = 0
	// At most this many dials in flight across the cluster: the client
	// starts one per command that finds the pool empty.
	cp.OpeningConnectionThreshold = max(8, cfg.MinConns)
	// The tend notices a dead node (and finds it back) this often; Get
	// does not call the client while no node is live.
	cp.TendInterval = 250 * time.Millisecond
	client, aerr := as.NewClientWithPolicyAndHost(cp, hosts...)
	if aerr != nil {
		return nil, fmt.Errorf("profiles: aerospike: cannot connect to %s: %w", strings.Join(cfg.Hosts, ","), aerr)
	}
	s.client = client
	if err := s.checkNamespace(); err != nil {
		client.Close()
		return nil, err
	}

	s.readTemplate = *as.NewPolicy()
	s.readTemplate.MaxRetries = 0 // a retry cannot fit in a 1 ms budget
	// With no retries, the client loops only while the pool is empty
	// (waiting for a dial it started): without a pause between turns that
	// loop spins its goroutine for the whole read timeout. Against a real
	// server slow to accept (0.1-860 ms, TestBreakerLiveNodeBusyPool) at
	// 10k req/s, hundreds of spinning reads took an edge's one CPU: 2.8k
	// of 10k req/s answered, client p50 6 s.
	s.readTemplate.SleepBetweenRetries = poolWait
	// Not ExitFastOnExhaustedConnectionPool: v7.10.2 also applies it when
	// the pool is merely empty for a moment (errors.Is matches on the
	// result code alone), failing bursts that a fresh connection would
	// serve well within the deadline.
	s.policies.New = func() any { return new(as.BasePolicy) }
	s.keys.New = func() any {
		k, err := as.NewKey(s.cfg.Namespace, s.cfg.Set, "")
		if err != nil {
			return nil // Get falls back to as.NewKey, which reports the error
		}
		return k
	}

	switch {
	case cfg.TTL == TTLNever:
		s.writeTTL = as.TTLDontExpire
	case cfg.TTL > 0:
		s.writeTTL = uint32(cfg.TTL / time.Second)
	default:
		s.writeTTL = as.TTLServerDefault
	}
	s.capPolicy = as.NewMapPolicy(as.MapOrder.KEY_ORDERED, as.MapWriteMode.UPDATE)
	return s, nil
}

// checkNamespace fails early on a typo instead of failing every request.
func (s *AerospikeStore) checkNamespace() error {
	nodes := s.client.GetNodes()
	if len(nodes) == 0 {
		return fmt.Errorf("profiles: aerospike %s: no cluster nodes", s.name)
	}
	info, aerr := nodes[0].RequestInfo(&as.InfoPolicy{Timeout: s.cfg.ConnectTimeout}, "namespaces")
	if aerr != nil {
		return fmt.Errorf("profiles: aerospike %s: list namespaces: %w", s.name, aerr)
	}
	list := info["namespaces"]
	for _, ns := range strings.Split(list, ";") {
		if ns == s.cfg.Namespace {
			return nil
		}
	}
	return fmt.Errorf("profiles: aerospike %s: namespace %q not on the cluster (it has %q)", s.name, s.cfg.Namespace, list)
}

// budget returns how long an operation may take: the context's remaining
// time, or def when it has no deadline.
func budget(ctx context.Context, def time.Duration, op string) (time.Duration, error) {
	if err := ctxErr(ctx, op); err != nil {
		return 0, err
	}
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return 0, ErrTimeout
		}
		return d, nil
	}
	return def, nil
}

// classify maps a client error to the package's errors.
func (s *AerospikeStore) classify(ctx context.Context, aerr as.Error, op string) error {
	switch {
	case aerr.Matches(types.KEY_NOT_FOUND_ERROR):
		return ErrNotFound
	case aerr.Matches(types.NO_AVAILABLE_CONNECTIONS_TO_NODE):
		return &aeroError{op: op, store: s, err: aerr, noConn: true}
	case aerr.Matches(types.TIMEOUT):
		return ErrTimeout
	case aerr.Matches(types.MAX_RETRIES_EXCEEDED):
		// With MaxRetries 0 the client reports a socket deadline and a
		// dropped connection alike ("timed out ... exceeded number of
		// retries"); only the clock tells them apart.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 250*time.Microsecond {
			return ErrTimeout
		}
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return ErrTimeout
	}
	return &aeroError{op: op, store: s, err: aerr}
}

// aeroError wraps a client error without formatting it: the client's
// Error() builds a long string (in-doubt flag, node, chained causes), and
// on an overloaded path that formatting cost more CPU than the reads. The
// message is built only when someone prints it.
type aeroError struct {
	op     string
	store  *AerospikeStore
	err    as.Error
	noConn bool
}

func (e *aeroError) Error() string {
	if e.noConn {
		// The client reports a pool that stayed empty as a timeout; say
		// what really happened so operators raise max_conns/min_conns.
		return fmt.Sprintf("profiles: aerospike %s: no free connection (max_conns=%d): %v", e.op, e.store.cfg.MaxConns, e.err)
	}
	return fmt.Sprintf("profiles: aerospike %s %s/%s: %v", e.op, e.store.cfg.Namespace, e.store.cfg.Set, e.err)
}

func (e *aeroError) Unwrap() error { return e.err }

// Get implements Store. It reads only the profile bins, with the context's
// deadline as the client's total and socket timeout and no retries.
func (s *AerospikeStore) Get(ctx context.Context, device string, dst *Profile) error {
	dst.Reset()
	if device == "" {
		return s.countGet(ErrNotFound)
	}
	if s.closed.Load() {
		return s.countGet(errClosed)
	}
	d, err := budget(ctx, s.cfg.ReadTimeout, "get")
	if err != nil {
		return s.countGet(err)
	}
	// The client keeps no reference to the key once Get has returned and
	// its record is dropped (fillProfile copies out of it), so the key goes
	// back to the pool on return.
	key, _ := s.keys.Get().(*as.Key)
	var aerr as.Error
	if key != nil {
		defer s.keys.Put(key)
		aerr = key.SetValue(as.StringValue(device))
	} else {
		key, aerr = as.NewKey(s.cfg.Namespace, s.cfg.Set, device)
	}
	if aerr != nil {
		return s.countGet(fmt.Errorf("profiles: aerospike key: %w", aerr))
	}
	now := time.Now().UnixNano()
	ok, probe := s.brk.allowProbe(now)
	if !ok {
		return s.countGet(ErrUnavailable)
	}
	if !s.client.IsConnected() {
		// The tend found no live node: the client would spin until the
		// deadline, starting a dial goroutine per turn. Fail at once.
		s.brk.failure(now)
		return s.countGet(ErrUnavailable)
	}
	p := s.policies.Get().(*as.BasePolicy)
	*p = s.readTemplate
	p.TotalTimeout, p.SocketTimeout = d, d
	if probe {
		// After the node came back (or stopped answering garbage), every
		// pooled connection is to its previous life and fails at once;
		// one per probe window would keep the breaker open for
		// MinConns windows. The probe retries through them, within at
		// least the store's read timeout (Bounded keeps the request's
		// own deadline).
		p.MaxRetries = s.cfg.MinConns + 1
		p.SleepBetweenRetries = 0 // dead pooled connections fail at once: no wait
		p.TotalTimeout = max(d, s.cfg.ReadTimeout)
		p.SocketTimeout = p.TotalTimeout
	}
	s.inflight.Add(1)
	rec, aerr := s.client.Get(p, key, getBins...)
	s.inflight.Add(-1)
	s.policies.Put(p)
	if aerr != nil {
		// The client chains the errors of a command's attempts, so an
		// answer (not found) can carry a connection failure from before.
		switch {
		case aerr.Matches(types.KEY_NOT_FOUND_ERROR):
			s.brk.success()
		case s.noteConnError(aerr, now):
		case aerr.Matches(types.NO_AVAILABLE_CONNECTIONS_TO_NODE):
			// overloaded: says nothing about the node either way
		case !aerr.Matches(types.TIMEOUT, types.MAX_RETRIES_EXCEEDED):
			s.brk.success() // the node answered; a timeout says neither
		}
		return s.countGet(s.classify(ctx, aerr, "get"))
	}
	s.brk.success()
	if rec == nil { // not expected from the client; never dereference nil
		return s.countGet(ErrNotFound)
	}
	if err := fillProfile(rec.Bins, dst); err != nil {
		dst.Reset()
		return s.countGet(err)
	}
	return s.countGet(nil)
}

// writePolicy builds the policy for one write bounded by ctx.
func (s *AerospikeStore) writePolicy(ctx context.Context, op string, retries int) (*as.WritePolicy, error) {
	d, err := budget(ctx, s.cfg.WriteTimeout, op)
	if err != nil {
		return nil, err
	}
	wp := as.NewWritePolicy(0, s.writeTTL)
	wp.TotalTimeout, wp.SocketTimeout = d, d
	wp.MaxRetries = retries
	return wp, nil
}

// CapKey is the caps map key for campaignID's window starting at
// windowStart: "campaignID:" plus the window start zero-padded to 10
// digits, so one campaign's windows sort in time order.
func CapKey(campaignID string, windowStart int64) string {
	return fmt.Sprintf("%s:%010d", campaignID, windowStart)
}

// IncrementCap implements Store with one Operate call: it removes the
// campaign's keys for earlier windows and increments the current one, both
// server-side, so concurrent edges never lose counts. It is not retried:
// a retry after an ambiguous failure could count twice.
func (s *AerospikeStore) IncrementCap(ctx context.Context, device, campaignID string, periodSeconds uint32, now int64) error {
	if err := checkCapArgs(device, campaignID, periodSeconds, now); err != nil {
		return s.countCap(err)
	}
	if s.closed.Load() {
		return s.countCap(errClosed)
	}
	wp, err := s.writePolicy(ctx, "increment cap", 0)
	if err != nil {
		return s.countCap(err)
	}
	key, aerr := as.NewKey(s.cfg.Namespace, s.cfg.Set, device)
	if aerr != nil {
		return s.countCap(fmt.Errorf("profiles: aerospike key: %w", aerr))
	}
	cur := CapKey(campaignID, WindowStart(now, periodSeconds))
	if !s.brk.allow(time.Now().UnixNano()) {
		return s.countCap(ErrUnavailable)
	}
	s.inflight.Add(1)
	_, aerr = s.client.Operate(wp, key,
		as.MapRemoveByKeyRangeOp(BinCaps, campaignID+":", cur, as.MapReturnType.NONE),
		as.MapIncrementOp(s.capPolicy, BinCaps, cur, 1),
	)
	s.inflight.Add(-1)
	if aerr != nil {
		s.noteConnError(aerr, time.Now().UnixNano())
		err := s.classify(ctx, aerr, "increment cap")
		if err == ErrNotFound { // cannot happen for writes; keep the cause visible
			err = fmt.Errorf("profiles: aerospike increment cap: %w", aerr)
		}
		return s.countCap(err)
	}
	return s.countCap(nil)
}

// PutProfile implements Putter: it writes the seg and apps bins of device
// (creating the record if needed) and leaves the caps bin alone. Writes
// are idempotent, so they are retried twice within the deadline.
func (s *AerospikeStore) PutProfile(ctx context.Context, device string, p *Profile) error {
	if device == "" {
		return fmt.Errorf("%w: empty device id", ErrInvalid)
	}
	if s.closed.Load() {
		return errClosed
	}
	wp, err := s.writePolicy(ctx, "put", 2)
	if err != nil {
		return err
	}
	key, aerr := as.NewKey(s.cfg.Namespace, s.cfg.Set, device)
	if aerr != nil {
		return fmt.Errorf("profiles: aerospike key: %w", aerr)
	}
	segs := make([]any, len(p.Segments))
	for i, v := range p.Segments {
		segs[i] = v
	}
	apps := make([]any, len(p.InstalledApps))
	for i, v := range p.InstalledApps {
		apps[i] = int64(v) // Aerospike integers are signed; keep the bits
	}
	aerr = s.client.PutBins(wp, key,
		as.NewBin(BinSegments, as.NewListValue(segs)),
		as.NewBin(BinApps, as.NewListValue(apps)),
	)
	if aerr != nil {
		return s.classify(ctx, aerr, "put")
	}
	return nil
}

// Name implements Store.
func (s *AerospikeStore) Name() string { return s.name }

// Close implements Store; it closes the client's connections.
func (s *AerospikeStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.client.Close()
	return nil
}

// fillProfile decodes the profile bins into dst. Unknown bins are ignored;
// wrongly typed ones are an error so corrupt data shows up in Stats.
func fillProfile(bins as.BinMap, dst *Profile) error {
	if v, ok := bins[BinSegments]; ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("profiles: aerospike bin %q is %T, want a list", BinSegments, v)
		}
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("profiles: aerospike bin %q[%d] is %T, want a string", BinSegments, i, e)
			}
			dst.Segments = append(dst.Segments, s)
		}
	}
	if v, ok := bins[BinApps]; ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("profiles: aerospike bin %q is %T, want a list", BinApps, v)
		}
		for i, e := range list {
			h, ok := asUint64(e)
			if !ok {
				return fmt.Errorf("profiles: aerospike bin %q[%d] is %T, want an integer", BinApps, i, e)
			}
			dst.InstalledApps = append(dst.InstalledApps, h)
		}
		dst.InstalledApps = sortApps(dst.InstalledApps)
	}
	if v, ok := bins[BinCaps]; ok && v != nil {
		switch m := v.(type) {
		case map[any]any: // unordered map
			for k, c := range m {
				appendCap(dst, k, c)
			}
		case []as.MapPair: // key-ordered map, as written by IncrementCap
			for _, p := range m {
				appendCap(dst, p.Key, p.Value)
			}
		default:
			return fmt.Errorf("profiles: aerospike bin %q is %T, want a map", BinCaps, v)
		}
	}
	return nil
}

// appendCap adds one caps map entry; keys not in CapKey form are skipped
// so foreign entries cannot break reads.
func appendCap(dst *Profile, k, v any) {
	ks, ok := k.(string)
	if !ok {
		return
	}
	i := strings.LastIndexByte(ks, ':')
	if i <= 0 {
		return
	}
	ws, err := strconv.ParseInt(ks[i+1:], 10, 64)
	if err != nil {
		return
	}
	var n uint32
	switch x := v.(type) {
	case int:
		n = uint32(max(0, min(x, math.MaxUint32)))
	case int64:
		n = uint32(max(0, min(x, math.MaxUint32)))
	default:
		return
	}
	dst.Caps = append(dst.Caps, Cap{CampaignID: ks[:i], Count: n, WindowStart: ws})
}

func asUint64(v any) (uint64, bool) {
	switch x := v.(type) {
	case int:
		return uint64(x), true
	case int64:
		return uint64(x), true
	case uint64:
		return x, true
	case int32:
		return uint64(x), true
	}
	return 0, false
}
