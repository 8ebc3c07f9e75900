// Package health holds the edge's serving status and answers /health, the
// probe HAProxy and IPVS use to decide whether to send traffic, and the
// HAProxy agent-check (agent.go) that also carries a load-following weight.
//
// The probe is cheap by design: it reads atomics and never calls a
// dependency. Anything that costs more than an atomic load (profile-store
// rates over a sliding window, CPU use) is computed once a second by Run and
// published through atomics, so /health answers in microseconds under any
// ad load and allocates nothing. docs/HEALTH.md describes the model.
package health

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// Status is the edge's serving state.
type Status int32

// Statuses. Starting and Draining answer 503 so balancers send nothing;
// OK and Degraded answer 200 (degraded still serves: ads go out
// unpersonalised, which beats no ad at all).
const (
	Starting Status = iota
	OK
	Degraded
	Draining
)

var statusNames = [...]string{"starting", "ok", "degraded", "draining"}

// String is the status as /health reports it.
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Code is the HTTP status code a probe gets.
func (s Status) Code() int {
	if s == OK || s == Degraded {
		return 200
	}
	return 503
}

// Snapshot describes the snapshot being served, for the report.
type Snapshot struct {
	Version string
	Created time.Time
}

// ProfileCounters are the cumulative counters of the profile store that
// the window rates are computed from (profiles.Stats has them all).
type ProfileCounters struct {
	Gets, Hits, Misses, Timeouts, Errors uint64
	// Unreachable is the store's own verdict (its circuit breaker is
	// open): reported at once, without waiting for a window of failures.
	Unreachable bool
}

// StagingState is the staging forwarder's state word in /health.
type StagingState string

// Staging states. StagingFailing makes the edge report degraded (it still
// serves: staging is 5% of traffic and falls back to production).
const (
	StagingOff     StagingState = "off"
	StagingOn      StagingState = "on"
	StagingFailing StagingState = "failing"
)

// Staging is what the staging forwarder reports about itself. The func set
// with SetStaging is called on every probe: it must be cheap (atomics) and
// should not allocate.
type Staging struct {
	State StagingState
	// Percent is the share of traffic forwarded (0-100).
	Percent float64
	// ErrorRate is the share of forwarded requests that failed recently.
	ErrorRate float64
}

// Defaults of the degradation rules.
const (
	// DefaultDegradeRate: profile reads failing (timeouts plus errors) at
	// this share of the window or more mark the edge degraded.
	DefaultDegradeRate = 0.10
	// DefaultMinReads: fewer reads than this in the window are too few to
	// judge the store by.
	DefaultMinReads = 20
	// DefaultWindow is the sliding window of the profile rates.
	DefaultWindow = 10 * time.Second
	// DefaultCapacity is the in-flight count treated as full load.
	DefaultCapacity = 1024
)

// Config is what a State reports and the rules it judges by. It is
// assembled in one place (the edge's start-up) and passed to New; a State
// never changes it, so the probe reads it without synchronisation. The
// funcs are called on every probe unless said otherwise: they must be
// cheap (atomics) and must not block.
type Config struct {
	// Build is the build version in the report.
	Build string
	// SnapshotFn reports the snapshot in service (ok=false when none). The
	// edge's is two atomic adds.
	SnapshotFn func() (Snapshot, bool)
	// InFlightFn reports requests being served.
	InFlightFn func() int64
	// ProfileStore names the profile store in the report ("" = none).
	ProfileStore string
	// ProfilesFn returns the store's cumulative counters; Run samples it
	// once per tick, the probe never calls it.
	ProfilesFn func() ProfileCounters
	// MaxSnapshotAge marks the edge degraded when the snapshot's data time
	// is older (0 = no limit).
	MaxSnapshotAge time.Duration
	// DegradeRate and MinReads tune the profile-store rule (defaults
	// DefaultDegradeRate, DefaultMinReads).
	DegradeRate float64
	MinReads    uint64
	// Capacity is the in-flight count treated as 100% load for the agent's
	// weight (default DefaultCapacity).
	Capacity int64
	// Staging, if set, is the staging forwarder's report ("off" when nil).
	Staging func() Staging
	// EventsFn, if set, reports the billing event log's troubles: pixels
	// not recorded recently (answered 503), and a shipping backlog older
	// than its limit. Either marks the edge degraded.
	EventsFn func(now time.Time) (notRecorded, backlog bool)
	// PacingProblem, if set, says why budget pacing is degraded ("" = it
	// is not): the spend store is unreachable or its records unreadable,
	// so budgeted campaigns are paced on this edge's own spend (the pacing
	// service's is one atomic load).
	PacingProblem func() string
	// Extras append more members (each starting with a comma) to the
	// body, in order, e.g. snapshot distribution progress, the event log.
	Extras []func(dst []byte) []byte
}

// State is the shared health state. Writers are the lifecycle code (start,
// drain, maintenance) and Run's sampler; the probe only reads atomics and
// the Config given to New.
type State struct {
	cfg Config

	started  time.Time
	build    string
	draining atomic.Bool
	maint    atomic.Bool
	drainAt  atomic.Int64 // unix nanoseconds of Drain, 0 before

	// Published by the sampler (Run).
	sampled     atomic.Bool
	winSeconds  atomic.Int64
	winReads    atomic.Uint64
	winOK       atomic.Uint64 // hits + misses: the store answered
	breakerOpen atomic.Bool   // the store says it is unreachable
	timeoutRate atomic.Uint64 // float64 bits
	errorRate   atomic.Uint64 // float64 bits
	cpu         atomic.Uint64 // float64 bits: process CPU / available CPU, 0-1
}

// New returns a State for a process started now, reporting and judging
// by cfg (zero rule fields take the defaults).
func New(cfg Config) *State {
	if cfg.DegradeRate <= 0 {
		cfg.DegradeRate = DefaultDegradeRate
	}
	if cfg.MinReads == 0 {
		cfg.MinReads = DefaultMinReads
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.ProfileStore == "" {
		cfg.ProfileStore = "none"
	}
	cfg.Extras = append([]func([]byte) []byte(nil), cfg.Extras...)
	return &State{cfg: cfg, started: time.Now(), build: sanitize(cfg.Build)}
}

// sanitize keeps a build string JSON-safe without escaping at probe time.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

// Drain turns the probe to 503 and the agent to "drain" for good: the
// balancer stops sending while in-flight and queued requests finish. Only
// the first call counts.
func (s *State) Drain() {
	if s.draining.CompareAndSwap(false, true) {
		s.drainAt.Store(time.Now().UnixNano())
	}
}

// Draining reports whether Drain was called.
func (s *State) Draining() bool { return s.draining.Load() }

// SetMaint puts the edge in (or out of) maintenance: the probe answers 503
// (status draining, "maint": true) and the agent says "maint", but the
// process keeps running and serving what still reaches it. For canaries
// and debugging; a real stop goes through Drain.
func (s *State) SetMaint(on bool) { s.maint.Store(on) }

// Maint reports whether maintenance is on.
func (s *State) Maint() bool { return s.maint.Load() }

func (s *State) stagingNow() Staging {
	if s.cfg.Staging != nil {
		st := s.cfg.Staging()
		if st.State == "" {
			st.State = StagingOff
		}
		return st
	}
	return Staging{State: StagingOff}
}

// Reasons a status is not plain ok, as bits (reported as strings).
const (
	reasonNoSnapshot = 1 << iota
	reasonDraining
	reasonMaint
	reasonProfiles
	reasonUnreachable
	reasonSnapshotAge
	reasonStaging
	reasonEventsNotRecorded
	reasonEventsBacklog
	reasonPacing
)

var reasonNames = [...]string{"no_snapshot", "draining", "maintenance", "profile_failures", "profile_store_unreachable", "snapshot_too_old", "staging_failing",
	"events_not_recorded", "events_backlog", "pacing_degraded"}

// view is one consistent-enough reading of everything the probe reports.
type view struct {
	status   Status
	reasons  uint32
	pacing   string
	snap     Snapshot
	hasSnap  bool
	inFlight int64
	staging  Staging
	reach    int8 // -1 unknown, 0 no, 1 yes
	reads    uint64
	tRate    float64
	eRate    float64
	cpu      float64
}

func (s *State) read(now time.Time) view {
	var v view
	if s.cfg.SnapshotFn != nil {
		v.snap, v.hasSnap = s.cfg.SnapshotFn()
	}
	if s.cfg.InFlightFn != nil {
		v.inFlight = s.cfg.InFlightFn()
	}
	v.staging = s.stagingNow()
	v.reach = -1
	if s.sampled.Load() {
		v.reads = s.winReads.Load()
		v.tRate = math.Float64frombits(s.timeoutRate.Load())
		v.eRate = math.Float64frombits(s.errorRate.Load())
		v.cpu = math.Float64frombits(s.cpu.Load())
		minReads := s.cfg.MinReads
		switch {
		case s.cfg.ProfileStore == "none":
			v.reach = 1
		case s.breakerOpen.Load(), v.reads >= minReads && s.winOK.Load() == 0:
			v.reach = 0
		case v.reads > 0:
			v.reach = 1
		}
		if v.reads >= minReads && v.tRate+v.eRate >= s.cfg.DegradeRate {
			v.reasons |= reasonProfiles
		}
		if v.reach == 0 {
			v.reasons |= reasonUnreachable
		}
	}
	if v.staging.State == StagingFailing {
		v.reasons |= reasonStaging
	}
	if s.cfg.EventsFn != nil {
		nr, bl := s.cfg.EventsFn(now)
		if nr {
			v.reasons |= reasonEventsNotRecorded
		}
		if bl {
			v.reasons |= reasonEventsBacklog
		}
	}
	if s.cfg.PacingProblem != nil {
		if v.pacing = s.cfg.PacingProblem(); v.pacing != "" {
			v.reasons |= reasonPacing
		}
	}
	if v.hasSnap && s.cfg.MaxSnapshotAge > 0 && now.Sub(v.snap.Created) > s.cfg.MaxSnapshotAge {
		v.reasons |= reasonSnapshotAge
	}
	degraded := v.reasons != 0
	if !v.hasSnap {
		v.reasons |= reasonNoSnapshot
	}
	if s.maint.Load() {
		v.reasons |= reasonMaint
	}
	if s.draining.Load() {
		v.reasons |= reasonDraining
	}
	switch {
	case s.draining.Load() || s.maint.Load():
		v.status = Draining
	case !v.hasSnap:
		v.status = Starting
	case degraded:
		v.status = Degraded
	default:
		v.status = OK
	}
	return v
}

// Status computes the current status.
func (s *State) Status() Status { return s.read(time.Now()).status }

// Weight is the agent's weight in percent (10-100) for the current load:
// full weight up to half load, then linearly down to 10% at full load, so
// a balancer moves traffic off a saturated edge before it slows down.
// Load is the larger of in-flight/Capacity and the process's CPU share.
func (s *State) Weight() int {
	v := s.read(time.Now())
	return s.weight(&v)
}

func (s *State) weight(v *view) int {
	load := max(float64(v.inFlight)/float64(s.cfg.Capacity), v.cpu)
	if load <= 0.5 {
		return 100
	}
	w := int(math.Round(100 - (load-0.5)*180))
	return min(100, max(10, w))
}

// AppendJSON appends the /health body and returns it with the status code.
// It allocates nothing when dst has room (about 600 bytes).
func (s *State) AppendJSON(dst []byte, now time.Time) ([]byte, int) {
	v := s.read(now)
	dst = append(dst, `{"status":"`...)
	dst = append(dst, v.status.String()...)
	dst = append(dst, '"')
	if v.reasons != 0 {
		dst = append(dst, `,"reasons":[`...)
		first := true
		for i, n := range reasonNames {
			if v.reasons&(1<<i) == 0 {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, '"')
			dst = append(dst, n...)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	if s.maint.Load() {
		dst = append(dst, `,"maint":true`...)
	}
	if v.hasSnap {
		dst = append(dst, `,"snapshot":{"version":"`...)
		dst = appendSafe(dst, v.snap.Version)
		dst = append(dst, `","created":"`...)
		dst = v.snap.Created.UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, `","age_seconds":`...)
		dst = strconv.AppendInt(dst, int64(now.Sub(v.snap.Created)/time.Second), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"profiles":{"store":"`...)
	dst = appendSafe(dst, s.cfg.ProfileStore)
	dst = append(dst, `","reachable":`...)
	switch v.reach {
	case 1:
		dst = append(dst, "true"...)
	case 0:
		dst = append(dst, "false"...)
	default:
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"window_seconds":`...)
	dst = strconv.AppendInt(dst, s.winSeconds.Load(), 10)
	dst = append(dst, `,"reads":`...)
	dst = strconv.AppendUint(dst, v.reads, 10)
	dst = append(dst, `,"timeout_rate":`...)
	dst = strconv.AppendFloat(dst, v.tRate, 'f', 4, 64)
	dst = append(dst, `,"error_rate":`...)
	dst = strconv.AppendFloat(dst, v.eRate, 'f', 4, 64)
	dst = append(dst, `},"staging":{"state":"`...)
	dst = appendSafe(dst, string(v.staging.State))
	dst = append(dst, `","percent":`...)
	dst = strconv.AppendFloat(dst, v.staging.Percent, 'f', -1, 64)
	dst = append(dst, `,"error_rate":`...)
	dst = strconv.AppendFloat(dst, v.staging.ErrorRate, 'f', 4, 64)
	dst = append(dst, `},"in_flight":`...)
	dst = strconv.AppendInt(dst, v.inFlight, 10)
	dst = append(dst, `,"cpu":`...)
	dst = strconv.AppendFloat(dst, v.cpu, 'f', 3, 64)
	dst = append(dst, `,"weight_percent":`...)
	dst = strconv.AppendInt(dst, int64(s.weight(&v)), 10)
	if at := s.drainAt.Load(); at != 0 {
		dst = append(dst, `,"draining_seconds":`...)
		dst = strconv.AppendFloat(dst, float64(now.UnixNano()-at)/1e9, 'f', 1, 64)
	}
	if s.cfg.PacingProblem != nil {
		dst = append(dst, `,"pacing":{"state":"`...)
		if v.pacing == "" {
			dst = append(dst, `ok"}`...)
		} else {
			dst = append(dst, `degraded","reason":"`...)
			dst = appendSafe(dst, v.pacing)
			dst = append(dst, `"}`...)
		}
	}
	for _, extra := range s.cfg.Extras {
		dst = extra(dst)
	}
	dst = append(dst, `,"uptime_seconds":`...)
	dst = strconv.AppendInt(dst, int64(now.Sub(s.started)/time.Second), 10)
	dst = append(dst, `,"build":"`...)
	dst = append(dst, s.build...)
	dst = append(dst, `"}`...)
	return dst, v.status.Code()
}

// appendSafe appends s for inside a JSON string, replacing the few bytes
// that would need escaping (versions and names never contain them; this
// keeps a surprise from breaking the JSON without costing an allocation).
func appendSafe(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}
