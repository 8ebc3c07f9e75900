//go:build linux

package loadgen

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The engine is one event loop on one locked OS thread: raw non-blocking
// keep-alive sockets in an epoll set, prebuilt request bytes, and a
// single schedule (request j is due at start + j/rate) that the loop
// sends on whichever connection is idle. It sleeps in epoll_pwait2 until
// the next request is due (nanosecond timeout, 1 ns timer slack): Go's
// own timers wake an idle runtime up to 1 ms late (the netpoller sleeps
// in whole milliseconds), and a goroutine, a timer and fasthttp's client
// per request capped the old generator at 8,250 req/s on one core.

const (
	cClosed uint8 = iota
	cDialing
	cIdle
	cBusy
)

type lconn struct {
	fd     int
	state  uint8
	reused bool  // carried an answered request before this one
	retry  bool  // this request already went out once on a stale connection
	out    bool  // waiting for EPOLLOUT (a dial or a partial write)
	gen    int32 // bumped at each dial: epoll events of a closed socket are told apart
	ri     int32 // the request's index in reqs
	seq    int64 // the in-flight request's index in the schedule
	sent   int64 // when it was written, ns since the engine's base
	req    []byte
	resp   respParser
}

type engine struct {
	o        *Options
	sa       unix.Sockaddr
	family   int
	epfd     int
	conns    []lconn
	idle     []int32 // stack of idle (or closed) connections: the warmest on top
	reqs     [][]byte
	base     time.Time
	startNS  int64
	interval float64
	total    int64 // requests in the schedule
	warmSeq  int64 // first recorded request
	due      int64 // requests whose time has come
	next     int64 // next request to send; [next, due) wait for a connection
	inflight int
	timeout  int64
	rd       []byte
	w        *worker
	counts   *counters
	pwait2   bool
}

// counters are read by the progress line while the loop runs.
type counters struct{ sent, done atomic.Int64 }

func (e *engine) now() int64       { return int64(time.Since(e.base)) }
func (e *engine) at(j int64) int64 { return e.startNS + int64(float64(j)*e.interval) }

// count is the number of requests due in the first d of the schedule.
func (e *engine) count(d time.Duration) int64 {
	n := int64(d.Seconds() * e.o.Rate)
	for n > 0 && e.at(n-1)-e.startNS >= int64(d) {
		n--
	}
	for e.at(n)-e.startNS < int64(d) {
		n++
	}
	return n
}

// newEngine resolves the target and opens the epoll set.
func newEngine(o *Options, host string, reqs [][]byte, conns int, w *worker, c *counters) (*engine, error) {
	addr, err := net.ResolveTCPAddr("tcp", host)
	if err != nil {
		return nil, err
	}
	e := &engine{o: o, reqs: reqs, w: w, counts: c, rd: make([]byte, 64<<10), pwait2: true}
	if ip4 := addr.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: addr.Port}
		copy(sa.Addr[:], ip4)
		e.sa, e.family = sa, unix.AF_INET
	} else {
		sa := &unix.SockaddrInet6{Port: addr.Port}
		copy(sa.Addr[:], addr.IP.To16())
		if addr.Zone != "" {
			if ifi, err := net.InterfaceByName(addr.Zone); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			}
		}
		e.sa, e.family = sa, unix.AF_INET6
	}
	if e.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	e.conns = make([]lconn, conns)
	e.idle = make([]int32, 0, conns)
	for i := conns - 1; i >= 0; i-- {
		e.conns[i].fd = -1
		e.idle = append(e.idle, int32(i))
	}
	return e, nil
}

// run sends the schedule and waits for its answers (or the timeout of
// the last ones). It must run on a goroutine of its own: it locks the OS
// thread and leaves it locked, so the thread (with its timer slack
// changed) ends with the goroutine.
func (e *engine) run(ctx context.Context, startIn, duration, warmup time.Duration) {
	runtime.LockOSThread()
	// 1 ns of timer slack instead of the default 50 us: the loop sleeps
	// until a request's due time and every microsecond late is latency.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	defer e.closeAll()
	e.base = time.Now()
	e.startNS = int64(startIn)
	e.interval = float64(time.Second) / e.o.Rate
	e.total = e.count(duration) // the schedule: start <= at(j) < start+duration
	e.warmSeq = e.count(warmup) // requests due in the warm-up are not recorded
	e.timeout = int64(e.o.Timeout)
	checkEvery := max(int64(time.Millisecond), e.timeout/10)
	nextCheck := int64(0)
	events := make([]unix.EpollEvent, 256)
	done := ctx.Done()
	for {
		now := e.now()
		for e.due < e.total && e.at(e.due) <= now {
			e.due++
		}
		for e.next < e.due && len(e.idle) > 0 {
			e.send(e.pop(), now, false)
		}
		if e.next == e.total && e.inflight == 0 {
			return
		}
		select {
		case <-done:
			return
		default:
		}
		if e.inflight > 0 && now >= nextCheck {
			e.expire(now)
			nextCheck = now + checkEvery
		}
		wait := int64(50 * time.Millisecond) // ctx is looked at this often at least
		if e.due < e.total && e.next == e.due {
			wait = min(wait, e.at(e.due)-now)
		}
		if e.inflight > 0 {
			wait = min(wait, nextCheck-now)
		}
		n := e.wait(events, max(wait, 0))
		for _, ev := range events[:n] {
			if c := &e.conns[ev.Fd]; c.fd >= 0 && c.gen == ev.Pad {
				e.event(int(ev.Fd), ev.Events)
			}
		}
	}
}

// wait blocks in epoll_pwait2 for up to ns nanoseconds (epoll_wait with a
// millisecond timeout, rounded up, on kernels before 5.11).
//
// epoll_pwait2 is entered as a raw syscall, keeping the P. Through
// Syscall6, a generator pinned to one CPU (GOMAXPROCS 1) had its only P
// taken by sysmon from every wait longer than 20 us (no idle P, so the
// runtime retakes it at once), and each wake-up paid a hand-off and a
// futex to get it back: 4.8 s of CPU for 52.5k requests at 5k req/s, 2.8 s
// raw (docs/BENCHMARKS.md, "The generator's wait"). Nothing else needs
// the P while the engine waits (the once-a-second progress line can wait
// for it); a stop-the-world or preemption signal
// interrupts the wait (EINTR, answered as 0 events) and the wait is never
// longer than the loop's 50 ms.
func (e *engine) wait(events []unix.EpollEvent, ns int64) int {
	if e.pwait2 {
		ts := unix.NsecToTimespec(ns)
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(e.epfd), uintptr(unsafe.Pointer(&events[0])),
			uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		if errno == 0 {
			return int(n)
		}
		if errno != unix.ENOSYS {
			return 0 // EINTR
		}
		e.pwait2 = false
	}
	n, err := unix.EpollWait(e.epfd, events, int((ns+999_999)/1_000_000))
	if err != nil {
		return 0
	}
	return n
}

func (e *engine) pop() int {
	i := e.idle[len(e.idle)-1]
	e.idle = e.idle[:len(e.idle)-1]
	return int(i)
}

// send writes the next request of the schedule on connection i, dialling
// first when it is closed. fromBacklog says the request waited for a
// connection to come free (late because of the server) rather than for
// the loop to wake (late because of the generator).
func (e *engine) send(i int, now int64, fromBacklog bool) {
	j := e.next
	e.next++
	e.counts.sent.Add(1)
	if late := now - e.at(j); late > int64(lateAfter) {
		if fromBacklog {
			e.w.late++
		} else {
			e.w.genLate++
		}
	}
	c := &e.conns[i]
	c.seq, c.retry = j, false
	c.ri = int32(e.w.rng.IntN(len(e.reqs)))
	e.inflight++
	e.start(i, now)
}

// start dials if needed and writes c.req.
func (e *engine) start(i int, now int64) {
	c := &e.conns[i]
	c.state, c.sent, c.req = cBusy, now, e.reqs[c.ri]
	c.resp.reset()
	if c.fd < 0 {
		if err := e.dial(i); err != nil {
			e.fail(i, err)
			return
		}
		if c.state == cDialing {
			return
		}
	}
	e.write(i)
}

func (e *engine) dial(i int) error {
	c := &e.conns[i]
	fd, err := unix.Socket(e.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	c.fd, c.reused = fd, false
	c.gen++
	err = unix.Connect(fd, e.sa)
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if errors.Is(err, unix.EINPROGRESS) {
		c.state, c.out, err = cDialing, true, nil
		ev |= unix.EPOLLOUT
	}
	if err != nil {
		return err
	}
	return unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: ev, Fd: int32(i), Pad: c.gen})
}

func (e *engine) write(i int) {
	c := &e.conns[i]
	for len(c.req) > 0 {
		n, err := unix.Write(c.fd, c.req)
		if errors.Is(err, unix.EAGAIN) {
			e.wantOut(i, true)
			return
		}
		if err != nil {
			e.broken(i, err)
			return
		}
		c.req = c.req[n:]
	}
	if c.out {
		e.wantOut(i, false)
	}
}

func (e *engine) wantOut(i int, on bool) {
	c := &e.conns[i]
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		ev |= unix.EPOLLOUT
	}
	c.out = on
	_ = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(i), Pad: c.gen})
}

// event handles epoll's news about connection i.
func (e *engine) event(i int, ev uint32) {
	c := &e.conns[i]
	if c.state == cDialing {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
		if err != nil {
			e.fail(i, err)
			return
		}
		c.state = cBusy
		e.write(i)
		return
	}
	if ev&unix.EPOLLOUT != 0 && c.state == cBusy && len(c.req) > 0 {
		e.write(i)
		if c.fd < 0 {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	n, err := unix.Read(c.fd, e.rd)
	switch {
	case errors.Is(err, unix.EAGAIN):
		return
	case c.state != cBusy: // the server closed an idle connection, or sent what nobody asked for
		e.closeConn(i)
		return
	case err != nil:
		e.broken(i, err)
		return
	case n == 0:
		if c.resp.eof() {
			e.complete(i, true)
		} else {
			e.broken(i, errEOF)
		}
		return
	}
	fin, extra, perr := c.resp.feed(e.rd[:n])
	switch {
	case perr != nil:
		e.fail(i, perr)
	case fin:
		e.complete(i, extra > 0 || c.resp.close)
	}
}

// complete records connection i's answer and frees the connection.
func (e *engine) complete(i int, closeAfter bool) {
	c := &e.conns[i]
	now := e.now()
	if c.seq >= e.warmSeq {
		_ = e.w.h.RecordValue(max((now-e.at(c.seq))/1000, 1))
		e.w.status[c.resp.status]++
	}
	e.counts.done.Add(1)
	e.inflight--
	c.state, c.reused = cIdle, true
	if closeAfter {
		e.closeConn(i)
	}
	e.release(i, now)
}

// broken handles a connection that failed mid-request: a keep-alive
// connection the server closed while it was idle fails on the next write
// or read with nothing received, and that request is retried once on a
// new connection (as HTTP clients do for idempotent requests); anything
// else is the request's error.
func (e *engine) broken(i int, err error) {
	c := &e.conns[i]
	if c.reused && !c.retry && c.resp.got == 0 {
		e.closeConn(i)
		c.retry = true
		e.start(i, c.sent)
		return
	}
	e.fail(i, err)
}

// fail counts connection i's request as an error and closes it; the
// loop gives it the next request (not release: a dead target would
// recurse through the whole backlog).
func (e *engine) fail(i int, err error) {
	e.w.errs++
	e.w.errKinds[errKind(err)]++
	e.counts.done.Add(1)
	e.inflight--
	e.closeConn(i)
	e.idle = append(e.idle, int32(i))
}

// release returns connection i to the idle stack, or gives it the oldest
// request waiting for one.
func (e *engine) release(i int, now int64) {
	if e.next < e.due {
		e.send(i, now, true)
		return
	}
	e.idle = append(e.idle, int32(i))
}

// expire fails requests in flight for longer than the timeout.
func (e *engine) expire(now int64) {
	for i := range e.conns {
		c := &e.conns[i]
		if (c.state == cBusy || c.state == cDialing) && now-c.sent >= e.timeout {
			e.fail(i, errTimeout)
		}
	}
}

var errTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (e *engine) closeConn(i int) {
	c := &e.conns[i]
	if c.fd >= 0 {
		_ = unix.Close(c.fd) // closing removes it from the epoll set
	}
	c.fd, c.state, c.out, c.reused = -1, cClosed, false, false
}

func (e *engine) closeAll() {
	for i := range e.conns {
		e.closeConn(i)
	}
	_ = unix.Close(e.epfd)
}
