package tcplisten

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// LazyDeadlines wraps a TCP listener so that its connections take
// deadlines lazily. fasthttp sets three deadlines per keep-alive request
// (idle, read, write); each one is a timer update in the runtime poller
// under a lock, a measurable share of a 15 us request. A lazy connection
// only records the deadline asked for, and moves the socket's armed
// deadline when the new one is earlier than the armed one. An armed
// deadline that fires before the one asked for (the connection was given
// more time since) is re-armed and the read or write retried, so a
// connection still times out exactly when it was told to, never earlier.
// In steady state a connection re-arms once per read or write timeout
// instead of three times per request.
//
// Only the connection's own goroutine may call Read, Write and the
// deadline setters concurrently with nothing but Close (fasthttp's way).
func LazyDeadlines(ln net.Listener) net.Listener { return lazyListener{ln} }

type lazyListener struct{ net.Listener }

func (l lazyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &lazyConn{TCPConn: tc}, nil
}

// lazyConn is a TCP connection with lazy deadlines. Deadlines are unix
// nanoseconds, 0 for none. The *net.TCPConn is embedded (not net.Conn) so
// that SetKeepAlive and the other TCP methods fasthttp looks for stay
// visible.
type lazyConn struct {
	*net.TCPConn
	readWant, readArmed   atomic.Int64
	writeWant, writeArmed atomic.Int64
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// setLazy records want and arms the socket only when want is earlier than
// what is armed (or nothing is armed).
func setLazy(want, armed *atomic.Int64, t time.Time, arm func(time.Time) error) error {
	n := nanos(t)
	want.Store(n)
	if a := armed.Load(); n == 0 || (a != 0 && a <= n) {
		return nil // armed no later than wanted: re-armed if it fires early
	}
	armed.Store(n)
	return arm(t)
}

// rearm reports whether a deadline error was early (the deadline asked
// for is later or none), after arming the one asked for.
func rearm(err error, want, armed *atomic.Int64, arm func(time.Time) error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	n := want.Load()
	if n != 0 && time.Now().UnixNano() >= n {
		return false // the real deadline
	}
	armed.Store(n)
	return arm(fromNanos(n)) == nil
}

// SetReadDeadline records t; see LazyDeadlines.
func (c *lazyConn) SetReadDeadline(t time.Time) error {
	return setLazy(&c.readWant, &c.readArmed, t, c.TCPConn.SetReadDeadline)
}

// SetWriteDeadline records t; see LazyDeadlines.
func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	return setLazy(&c.writeWant, &c.writeArmed, t, c.TCPConn.SetWriteDeadline)
}

// SetDeadline sets both.
func (c *lazyConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Read reads, retrying after an early deadline.
func (c *lazyConn) Read(b []byte) (int, error) {
	for {
		n, err := c.TCPConn.Read(b)
		if err == nil || n > 0 || !rearm(err, &c.readWant, &c.readArmed, c.TCPConn.SetReadDeadline) {
			return n, err
		}
	}
}

// Write writes all of b, resuming after an early deadline.
func (c *lazyConn) Write(b []byte) (int, error) {
	total := 0
	for {
		n, err := c.TCPConn.Write(b)
		total += n
		if err == nil || !rearm(err, &c.writeWant, &c.writeArmed, c.TCPConn.SetWriteDeadline) {
			return total, err
		}
		b = b[n:]
	}
}

// ReadFrom copies through Write (the embedded TCPConn's would skip the
// lazy write deadline).
func (c *lazyConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{c}, r)
}

// WriteTo copies through Read (the embedded TCPConn's would skip the lazy
// read deadline).
func (c *lazyConn) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{c})
}
