// Package health holds the edge's serving status and answers /health, the
// probe HAProxy and IPVS use to decide whether to send traffic. The probe is
// cheap by design: it reads atomics and never calls a dependency.
package health

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Status is the edge's serving state.
type Status int32

// Statuses. Starting and Draining answer 503 so balancers send nothing;
// OK and Degraded answer 200.
const (
	Starting Status = iota
	OK
	Degraded
	Draining
)

var statusNames = [...]string{"starting", "ok", "degraded", "draining"}

// String is the status as /health reports it.
func (s Status) String() string {
	if int(s) < len(statusNames) {
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

// State is the shared health state. Writers are the lifecycle code (start,
// snapshot swaps, drain); the probe only reads.
type State struct {
	draining atomic.Bool
	started  time.Time
	build    string
	// SnapshotFn reports the snapshot in service (ok=false when none).
	SnapshotFn func() (Snapshot, bool)
	// InFlightFn reports requests being served.
	InFlightFn func() int64
	// AppendExtra, if set, appends more members (each starting with a
	// comma) to the body, e.g. snapshot distribution progress. It must not
	// block.
	AppendExtra func(dst []byte) []byte
}

// New returns a State for a process started now, running build version build.
func New(build string) *State {
	return &State{started: time.Now(), build: build}
}

// Drain turns the probe to 503 for good: the balancer stops sending while
// in-flight and queued requests finish.
func (s *State) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *State) Draining() bool { return s.draining.Load() }

// Status computes the current status.
func (s *State) Status() Status {
	if s.draining.Load() {
		return Draining
	}
	if s.SnapshotFn == nil {
		return Starting
	}
	if _, ok := s.SnapshotFn(); !ok {
		return Starting
	}
	return OK
}

// AppendJSON appends the /health body and returns it with the status code.
func (s *State) AppendJSON(dst []byte, now time.Time) ([]byte, int) {
	st := s.Status()
	dst = append(dst, `{"status":"`...)
	dst = append(dst, st.String()...)
	dst = append(dst, '"')
	if s.SnapshotFn != nil {
		if snap, ok := s.SnapshotFn(); ok {
			dst = append(dst, `,"snapshot":{"version":"`...)
			dst = append(dst, snap.Version...) // versions are [0-9A-Za-z._-]
			dst = append(dst, `","created":"`...)
			dst = snap.Created.UTC().AppendFormat(dst, time.RFC3339)
			dst = append(dst, `","age_seconds":`...)
			dst = strconv.AppendInt(dst, int64(now.Sub(snap.Created)/time.Second), 10)
			dst = append(dst, '}')
		}
	}
	if s.InFlightFn != nil {
		dst = append(dst, `,"in_flight":`...)
		dst = strconv.AppendInt(dst, s.InFlightFn(), 10)
	}
	if s.AppendExtra != nil {
		dst = s.AppendExtra(dst)
	}
	dst = append(dst, `,"uptime_seconds":`...)
	dst = strconv.AppendInt(dst, int64(now.Sub(s.started)/time.Second), 10)
	dst = append(dst, `,"build":"`...)
	dst = append(dst, s.build...)
	dst = append(dst, `"}`...)
	return dst, st.Code()
}
