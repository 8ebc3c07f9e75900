package health

import (
	"errors"
	"net"
	"strconv"
	"time"
)

// AppendAgent appends the HAProxy agent-check reply for the current state
// (one line, see docs/HEALTH.md):
//
//	ok, degraded  "up ready 87%"  serve, at a weight that follows load
//	draining      "drain"         no new sessions (Drain was called)
//	maintenance   "maint"         out of rotation until "ready" again
//	starting      "down#starting" no snapshot yet
//
// "ready" clears a drain or maint HAProxy remembers from before a restart.
func (s *State) AppendAgent(dst []byte) []byte {
	v := s.read(time.Now())
	switch {
	case s.draining.Load():
		return append(dst, "drain\n"...)
	case s.maint.Load():
		return append(dst, "maint\n"...)
	case v.status == Starting:
		return append(dst, "down#starting\n"...)
	}
	dst = append(dst, "up ready "...)
	dst = strconv.AppendInt(dst, int64(s.weight(&v)), 10)
	return append(dst, "%\n"...)
}

// ServeAgent answers HAProxy agent checks on ln until ln is closed: each
// connection gets one reply line and is closed, which is the whole
// protocol (anything HAProxy sends with agent-send is ignored). Connections
// are handled one at a time: a reply is a few bytes into a fresh socket
// buffer, so a slow or stuck peer costs at most the write deadline.
func (s *State) ServeAgent(ln net.Listener) error {
	buf := make([]byte, 0, 64)
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: don't spin
			continue
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		buf = s.AppendAgent(buf[:0])
		_, _ = c.Write(buf)
		_ = c.Close()
	}
}
