// Package evloop serves a fasthttp.RequestHandler from epoll event loops
// (github.com/panjf2000/gnet/v2) instead of a goroutine per connection.
//
// Why: on the guests adedge is measured on, a system call costs about 1.9
// us (kernel page-table isolation without PCID under a PVM hypervisor:
// docs/BENCHMARKS.md, "A syscall costs 1.9 us here"). fasthttp's
// goroutine-per-connection loop makes three per keep-alive request: the
// read of the request, the write of the answer, and one more read that
// finds nothing (EAGAIN) before the goroutine parks in the runtime poller.
// An event loop reads a connection only when epoll says it has data, so a
// request costs one read and one write, and epoll_wait is shared by every
// connection that became ready together.
//
// The handler runs on the loop only when Config.Inline says it never
// waits (no network, disk or lock wait: the ad path on an in-memory
// profile store). Every other request runs on its own goroutine, and the
// connection reads nothing more until its answer is written, so answers
// leave in request order (HTTP/1.1 pipelining).
//
// What it speaks: HTTP/1.1 and 1.0 requests with a Content-Length or
// chunked body or none, keep-alive, pipelining, Expect: 100-continue.
// Header lines must end in CRLF (bare LF: 400).
// Limits: MaxHeaderBytes (431), MaxBodyBytes (413), ReadTimeout for a
// request begun (408), IdleTimeout between requests, WriteTimeout for an
// answer the client does not take, MaxConns and MaxConnsPerIP (503).
package evloop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/server/tcplisten"
)

// Config is what a Server serves and its limits. Zero limits take the
// defaults named on each field.
type Config struct {
	// Handler answers every request; ErrorHandler (default: a plain-text
	// answer) answers the ones that could not be read.
	Handler      fasthttp.RequestHandler
	ErrorHandler func(ctx *fasthttp.RequestCtx, err error)
	// Inline reports whether a read request's handler never waits, so it
	// may run on the event loop. Nil: none does (every request on a
	// goroutine).
	Inline func(ctx *fasthttp.RequestCtx) bool
	// MaxHeaderBytes bounds the request line and headers (default 8 KiB);
	// MaxBodyBytes the body (default 16 KiB).
	MaxHeaderBytes, MaxBodyBytes int
	// ReadTimeout bounds the time from a request's first byte to its
	// last (default 5 s); IdleTimeout the wait for the next request on a
	// keep-alive connection (default 60 s); WriteTimeout the time an
	// answer may sit unsent because the client does not read (default 5 s).
	ReadTimeout, IdleTimeout, WriteTimeout time.Duration
	// MaxConns bounds open connections (default 100,000); MaxConnsPerIP
	// those from one client address (0: no bound).
	MaxConns, MaxConnsPerIP int
	// Loops is the number of event loops (default: GOMAXPROCS).
	Loops int
	// DisableHeaderNamesNormalizing is fasthttp.Server's option of the
	// same name.
	DisableHeaderNamesNormalizing bool
	// Backlog is the accept queue (0: the kernel's somaxconn; the kernel
	// caps any value at that).
	Backlog int
}

func (c *Config) defaults() {
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 8 << 10
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16 << 10
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 100_000
	}
	if c.ErrorHandler == nil {
		c.ErrorHandler = plainError
	}
}

// maxOutbound is how much unsent answer data a connection may hold before
// it is closed: a client that sends requests and never reads the answers.
const maxOutbound = 4 << 20

// Server is an event-loop HTTP server. Serve runs it; Shutdown stops it.
type Server struct {
	cfg Config

	mu    sync.Mutex
	conns map[*conn]struct{}
	perIP map[netip.Addr]int

	open    atomic.Int32
	closing atomic.Bool
	running int           // requests on goroutines (under mu)
	drained chan struct{} // closed when running falls to 0 (Shutdown waits on it)
	// readers and writers are the bufio buffers a loop lends a connection
	// while it reads or answers, so an idle connection holds none.
	readers, writers sync.Pool
	eng              atomic.Pointer[gnet.Engine]
	addr             net.Addr
	bootErr          error
	booted           chan struct{}
	bootOnce         sync.Once
	serveDone        chan struct{}
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("evloop: no handler")
	}
	cfg.defaults()
	s := &Server{cfg: cfg, conns: map[*conn]struct{}{}, perIP: map[netip.Addr]int{},
		booted: make(chan struct{}), serveDone: make(chan struct{})}
	s.readers.New = func() any { return bufio.NewReaderSize(nil, cfg.MaxHeaderBytes+64) }
	s.writers.New = func() any { return bufio.NewWriterSize(nil, 4096) }
	return s, nil
}

// OpenConnections is the number of connections open now.
func (s *Server) OpenConnections() int32 { return s.open.Load() }

// Ready is closed once Serve listens (or failed to).
func (s *Server) Ready() <-chan struct{} { return s.booted }

// Addr is the address Serve listens on, nil until Ready is closed or when
// it could not listen.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.booted:
		return s.addr
	default:
		return nil
	}
}

// Serve listens on TCP address addr (host:port; port 0 picks one, see
// Addr) and serves until Shutdown.
func (s *Server) Serve(addr string) error {
	defer close(s.serveDone)
	h := &handler{s: s}
	opts := []gnet.Option{
		gnet.WithMulticore(true), gnet.WithTicker(true), gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogger(quietLogger{}),
		gnet.WithTCPKeepAlive(3 * time.Minute),
	}
	if s.cfg.Loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(s.cfg.Loops))
	}
	err := gnet.Run(h, "tcp://"+addr, opts...)
	if s.bootErr != nil {
		err = s.bootErr
	}
	if err != nil && s.addr == nil {
		s.bootErr = err
	}
	s.bootOnce.Do(func() { close(s.booted) })
	return err
}

// Shutdown stops serving: new connections are closed as they come, every
// answer from now on carries Connection: close, requests running on
// goroutines finish, then the loops stop and close what is left. It
// returns ctx's error if that takes longer than ctx allows.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	select {
	case <-s.booted:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	done := make(chan struct{})
	if s.running == 0 {
		close(done)
	} else {
		s.drained = done
	}
	s.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("evloop: requests still running: %w", ctx.Err())
	}
	eng := s.eng.Load()
	if eng == nil {
		return nil
	}
	if err := eng.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	select {
	case <-s.serveDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handler is the gnet side of a Server.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

// OnBoot learns the listening address and sets the backlog, on a
// duplicate of the listener's descriptor (the same socket).
func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := h.s
	fd, err := eng.Dup()
	if err == nil {
		s.addr, err = listening(fd, s.cfg.Backlog)
		_ = syscall.Close(fd)
	}
	if err != nil {
		s.bootErr = fmt.Errorf("evloop: %w", err)
		return gnet.Shutdown
	}
	s.eng.Store(&eng)
	s.bootOnce.Do(func() { close(s.booted) })
	return gnet.None
}

// listening is the TCP address socket fd listens on, after setting its
// backlog (when > 0) the way server/tcplisten does.
func listening(fd, backlog int) (net.Addr, error) {
	if backlog > 0 {
		if err := tcplisten.SetBacklog(uintptr(fd), backlog); err != nil {
			return nil, fmt.Errorf("listen(backlog %d): %w", backlog, err)
		}
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}, nil
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	}
	return nil, fmt.Errorf("listener address %T is not TCP", sa)
}

// conn is one connection's state. Loop-owned fields are touched only on
// its event loop, or by the one goroutine running its request while busy
// is set (the loop leaves the connection alone then).
type conn struct {
	gc     gnet.Conn
	ctx    fasthttp.RequestCtx
	addr   addrConn
	ip     netip.Addr
	rd     bytes.Reader
	uri    fasthttp.URI  // checkTarget's scratch
	br     *bufio.Reader // from Server.readers while a request is parsed
	bw     *bufio.Writer // from Server.writers while process runs
	out    bytes.Buffer  // a goroutine's answer, handed to AsyncWrite
	expect bool          // 100 Continue sent for the pending request

	closed atomic.Bool  // OnClose ran: loop tasks queued for it do nothing
	busy   atomic.Bool  // a request runs on a goroutine
	begun  atomic.Int64 // unix ns a pending request was first seen incomplete, 0 none
	served atomic.Int64 // process runs that wrote (answers or nothing): OnTick tells idleness by it not moving
	stuck  atomic.Int64 // unix ns since answers have waited unsent, 0 none

	// Ticker-owned: the served count OnTick saw last, and since when
	// (unix ns) it has not moved. No clock is read per request.
	seen      int64
	idleSince atomic.Int64
}

func (h *handler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := h.s
	c := &conn{gc: gc}
	c.addr = addrConn{local: gc.LocalAddr(), remote: gc.RemoteAddr()}
	if ta, ok := c.addr.remote.(*net.TCPAddr); ok {
		c.ip, _ = netip.AddrFromSlice(ta.IP)
		c.ip = c.ip.Unmap()
	}
	if s.closing.Load() {
		return nil, gnet.Close
	}
	s.mu.Lock()
	over := len(s.conns) >= s.cfg.MaxConns
	if !over && s.cfg.MaxConnsPerIP > 0 && s.perIP[c.ip] >= s.cfg.MaxConnsPerIP {
		over = true
	}
	if !over {
		s.conns[c] = struct{}{}
		s.perIP[c.ip]++
	}
	s.mu.Unlock()
	if over {
		return []byte(overloaded), gnet.Close
	}
	s.open.Add(1)
	c.ctx.Init2(&c.addr, log.Default(), false) // ctx.Logger() writes to the process log
	c.idleSince.Store(time.Now().UnixNano())
	gc.SetContext(c)
	return nil, gnet.None
}

// overloaded is the answer to a connection over MaxConns or MaxConnsPerIP.
const overloaded = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 28\r\n\r\ntoo many connections, retry\n"

func (h *handler) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok {
		return gnet.None
	}
	c.closed.Store(true)
	s := h.s
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
			delete(s.perIP, c.ip)
		}
		s.open.Add(-1)
	}
	s.mu.Unlock()
	return gnet.None
}

func (h *handler) OnTraffic(gc gnet.Conn) gnet.Action {
	c := gc.Context().(*conn)
	if c.busy.Load() {
		// Its request runs on a goroutine; what came since waits in the
		// inbound buffer, bounded.
		if gc.InboundBuffered() > 2*(h.s.cfg.MaxHeaderBytes+h.s.cfg.MaxBodyBytes) {
			return gnet.Close
		}
		return gnet.None
	}
	return h.s.process(c)
}

// process answers every complete request in c's inbound buffer, in order,
// until one goes to a goroutine or the buffer holds no complete request.
// It runs on c's loop.
func (s *Server) process(c *conn) gnet.Action {
	gc := c.gc
	action := gnet.None
	s.lend(c)
	defer s.giveBack(c)
	for action == gnet.None {
		buf, _ := gc.Peek(-1)
		if len(buf) == 0 {
			c.begun.Store(0)
			break
		}
		n, err, ready := s.read(c, buf)
		if err != nil {
			s.answerError(c, err)
			action = gnet.Close
			break
		}
		if !ready {
			// The read timeout runs from here: a request that arrives
			// whole (nearly all) costs no clock read.
			if c.begun.Load() == 0 {
				c.begun.Store(time.Now().UnixNano())
			}
			break
		}
		_, _ = gc.Discard(n)
		c.begun.Store(0)
		c.expect = false
		if c.ctx.Request.Header.ConnectionClose() {
			c.ctx.SetConnectionClose()
		}
		if s.cfg.Inline == nil || !s.cfg.Inline(&c.ctx) {
			c.busy.Store(true)
			s.mu.Lock()
			s.running++
			s.mu.Unlock()
			go s.offload(c)
			break
		}
		s.cfg.Handler(&c.ctx)
		if s.closing.Load() {
			c.ctx.SetConnectionClose()
		}
		if err := c.ctx.Response.Write(c.bw); err != nil {
			return gnet.Close
		}
		if c.ctx.Response.ConnectionClose() {
			action = gnet.Close
		}
	}
	if err := c.bw.Flush(); err != nil {
		return gnet.Close
	}
	s.wrote(c)
	return action
}

// lend gives c the pooled bufio reader and writer for one turn on its
// loop; giveBack takes them back.
func (s *Server) lend(c *conn) {
	c.br = s.readers.Get().(*bufio.Reader)
	c.bw = s.writers.Get().(*bufio.Writer)
	c.bw.Reset(c.gc)
}

func (s *Server) giveBack(c *conn) {
	c.br.Reset(nil)
	c.bw.Reset(nil)
	s.readers.Put(c.br)
	s.writers.Put(c.bw)
	c.br, c.bw = nil, nil
}

// wrote counts an answer written and notes whether c's answers wait
// unsent (the client is not reading).
func (s *Server) wrote(c *conn) {
	c.served.Add(1)
	switch ob := c.gc.OutboundBuffered(); {
	case ob == 0:
		if c.stuck.Load() != 0 {
			c.stuck.Store(0)
		}
	case ob > maxOutbound:
		_ = c.gc.Close()
	case c.stuck.Load() == 0:
		c.stuck.Store(time.Now().UnixNano())
	}
}

// errBareLF refuses headers that end in bare LFs (400).
var errBareLF = errors.New("evloop: request headers must end lines with CRLF")

// errBadChunk is a chunked body that breaks its framing (400).
var errBadChunk = errors.New("evloop: malformed chunked request body")

// read parses the request at the start of buf into c.ctx: the bytes it
// took and ready, or not ready when buf does not hold all of it yet, or
// the error that ends the connection.
func (s *Server) read(c *conn, buf []byte) (n int, err error, ready bool) {
	end := headerEnd(buf)
	if end == -2 {
		return 0, errBareLF, false
	}
	if end < 0 {
		if len(buf) > s.cfg.MaxHeaderBytes {
			return 0, &fasthttp.ErrSmallBuffer{}, false
		}
		return 0, nil, false
	}
	if end > s.cfg.MaxHeaderBytes {
		return 0, &fasthttp.ErrSmallBuffer{}, false
	}
	req := &c.ctx.Request
	req.Reset()
	c.ctx.Response.Reset()
	if s.cfg.DisableHeaderNamesNormalizing {
		req.Header.DisableNormalizing()
	}
	c.rd.Reset(buf[:end])
	c.br.Reset(&c.rd)
	if err := req.Header.Read(c.br); err != nil {
		return 0, err, false
	}
	if err := c.checkTarget(&req.Header); err != nil {
		return 0, err, false
	}
	if req.Header.IsHead() {
		c.ctx.Response.SkipBody = true
	}
	cl := req.Header.ContentLength()
	switch {
	case cl == -1: // chunked: framed here, decoded by fasthttp
		n, complete, err := chunkedLen(buf[end:], s.cfg.MaxBodyBytes, s.cfg.MaxHeaderBytes)
		if err != nil || !complete {
			s.awaitBody(c, err)
			return 0, err, false
		}
		c.rd.Reset(buf[end : end+n])
		c.br.Reset(&c.rd)
		if err := req.ContinueReadBody(c.br, s.cfg.MaxBodyBytes); err != nil {
			return 0, err, false
		}
		return end + n, nil, true
	case cl < 0: // no body
		cl = 0
	case cl > s.cfg.MaxBodyBytes:
		return 0, fasthttp.ErrBodyTooLarge, false
	}
	if len(buf) < end+cl {
		s.awaitBody(c, nil)
		return 0, nil, false
	}
	if cl > 0 {
		req.SetBody(buf[end : end+cl])
	}
	return end + cl, nil, true
}

// awaitBody answers Expect: 100-continue once for a request whose body
// has not all come (err == nil).
func (s *Server) awaitBody(c *conn, err error) {
	if err == nil && !c.expect && bytes.EqualFold(c.ctx.Request.Header.Peek("Expect"), []byte("100-continue")) {
		c.expect = true
		_, _ = c.gc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	}
}

// chunkedLen is the length of the chunked body at the start of b,
// through its last chunk and trailers, with complete false while b does
// not hold all of it. It refuses data over maxBody (413), framing that
// breaks RFC 9112 7.1, a size line, trailer section or framing overhead
// past what a maxBody body could need (400).
func chunkedLen(b []byte, maxBody, maxTrailers int) (n int, complete bool, err error) {
	total, i := 0, 0
	for {
		if i > 8*maxBody+64 {
			return 0, false, errBadChunk // framing overhead no client needs
		}
		j := bytes.Index(b[i:], crlf)
		if j < 0 {
			if len(b)-i > 256 {
				return 0, false, errBadChunk
			}
			return 0, false, nil
		}
		line := b[i : i+j]
		if k := bytes.IndexByte(line, ';'); k >= 0 { // chunk extensions: ignored
			line = line[:k]
		}
		size, ok := parseHexSize(bytes.TrimRight(line, " \t"))
		if !ok {
			return 0, false, errBadChunk
		}
		i += j + 2
		if size == 0 {
			start := i
			for { // trailer field lines, then the empty line
				j := bytes.Index(b[i:], crlf)
				if j < 0 {
					if len(b)-start > maxTrailers {
						return 0, false, errBadChunk
					}
					return 0, false, nil
				}
				i += j + 2
				if j == 0 {
					return i, true, nil
				}
			}
		}
		if total += size; total > maxBody {
			return 0, false, fasthttp.ErrBodyTooLarge
		}
		if len(b)-i < size+2 {
			return 0, false, nil
		}
		if b[i+size] != '\r' || b[i+size+1] != '\n' {
			return 0, false, errBadChunk
		}
		i += size + 2
	}
}

var crlf = []byte("\r\n")

// parseHexSize reads a chunk size: hex digits only, below 256 MiB (a
// body limit refuses far less). Chunked bodies are rare on this edge, so
// strconv's copy of the digits is no cost worth a parser of our own.
func parseHexSize(h []byte) (int, bool) {
	if len(h) == 0 || h[0] == '+' || h[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(h), 16, 28)
	return int(n), err == nil
}

// checkTarget refuses what fasthttp.Server refuses before its handler
// runs: a target or Host that fasthttp's URI parser rejects (400). The
// common request (an origin-form target of printable ASCII, a host name
// or IPv4 address with an optional port) is checked by a scan, without
// the parse the handler may never need (edge.target).
func (c *conn) checkTarget(h *fasthttp.RequestHeader) error {
	uri, host := h.RequestURI(), h.Host()
	if plainTarget(uri) && plainHost(host) {
		return nil
	}
	return c.uri.Parse(host, uri)
}

// plainTarget: "/" then printable ASCII, no "://" (fasthttp would look
// for a scheme and host in it).
func plainTarget(uri []byte) bool {
	if len(uri) == 0 || uri[0] != '/' {
		return false
	}
	for i, b := range uri {
		if b < 0x21 || b > 0x7e || (b == ':' && i+2 < len(uri) && uri[i+1] == '/' && uri[i+2] == '/') {
			return false
		}
	}
	return true
}

// plainHost: letters, digits, '.' and '-', then an optional ":" and
// digits; nothing else (IPv6 literals, user info, escapes go to the parser).
func plainHost(host []byte) bool {
	if len(host) == 0 || len(host) > 255 {
		return false
	}
	port := false
	for _, b := range host {
		switch {
		case b >= '0' && b <= '9':
		case port:
			return false
		case b == ':':
			port = true
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '.', b == '-':
		default:
			return false
		}
	}
	return true
}

// headerEnd is the length of the request line and headers at the start of
// buf (through the empty line), -1 when buf does not hold them all yet,
// or -2 when they end in bare LFs (refused: RFC 9112 lets a server insist
// on CRLF, and fasthttp's header parser cannot tell such an end from a
// short read).
func headerEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(buf) && buf[i] == '\n' {
			return -2
		}
		if i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' {
			return i + 2
		}
	}
}

// answerError writes the error answer for a request that cannot be read;
// the connection closes after it.
func (s *Server) answerError(c *conn, err error) {
	c.ctx.Response.Reset()
	s.cfg.ErrorHandler(&c.ctx, err)
	c.ctx.Response.SetConnectionClose()
	_ = c.ctx.Response.Write(c.bw)
	_ = c.bw.Flush()
}

// offload runs c's request on a goroutine and hands the answer to the
// loop, which then goes on with what c sent since.
func (s *Server) offload(c *conn) {
	defer func() {
		s.mu.Lock()
		if s.running--; s.running == 0 && s.drained != nil {
			close(s.drained)
			s.drained = nil
		}
		s.mu.Unlock()
	}()
	s.cfg.Handler(&c.ctx)
	if s.closing.Load() {
		c.ctx.SetConnectionClose()
	}
	c.out.Reset()
	bw := s.writers.Get().(*bufio.Writer)
	bw.Reset(&c.out)
	err := c.ctx.Response.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	s.writers.Put(bw)
	closeAfter := err != nil || c.ctx.Response.ConnectionClose()
	werr := c.gc.AsyncWrite(c.out.Bytes(), func(gc gnet.Conn, err error) error {
		c.busy.Store(false)
		if err != nil || closeAfter || c.closed.Load() {
			return gc.Close()
		}
		s.wrote(c)
		if s.process(c) == gnet.Close {
			return gc.Close()
		}
		return nil
	})
	if werr != nil {
		c.busy.Store(false)
		_ = c.gc.Close()
	}
}

// tick is how often the timeouts are checked; a timeout fires up to this
// much late.
const tick = 250 * time.Millisecond

// OnTick closes connections past a timeout. It runs on its own goroutine:
// it reads only c's atomics, and closes with gnet's concurrency-safe Close.
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	s := h.s
	now := time.Now().UnixNano()
	read, idle, write := int64(s.cfg.ReadTimeout), int64(s.cfg.IdleTimeout), int64(s.cfg.WriteTimeout)
	var late, timedOut, stuck []*conn
	s.mu.Lock()
	for c := range s.conns {
		if c.busy.Load() {
			continue
		}
		if t := c.stuck.Load(); t != 0 && now-t > write {
			stuck = append(stuck, c)
			continue
		}
		if t := c.begun.Load(); t != 0 {
			if now-t > read {
				timedOut = append(timedOut, c)
			}
			continue
		}
		// Idle since the first tick that saw no new answer: never
		// earlier than IdleTimeout, up to one tick late.
		if n := c.served.Load(); n != c.seen {
			c.seen = n
			c.idleSince.Store(now)
		} else if now-c.idleSince.Load() > idle {
			late = append(late, c)
		}
	}
	s.mu.Unlock()
	for _, c := range late {
		_ = c.gc.Close()
	}
	for _, c := range timedOut {
		// The 408 is written on the connection's own loop.
		s.onLoop(c, func() {
			if c.busy.Load() || c.begun.Load() == 0 {
				return
			}
			s.lend(c)
			s.answerError(c, timeoutError{})
			s.giveBack(c)
			_ = c.gc.Close()
		})
	}
	for _, c := range stuck {
		// Only the loop knows whether the answers have left since.
		s.onLoop(c, func() {
			if c.gc.OutboundBuffered() == 0 {
				c.stuck.Store(0)
				return
			}
			_ = c.gc.Close()
		})
	}
	return tick, gnet.None
}

// onLoop runs f on c's event loop, unless c has closed by then.
func (s *Server) onLoop(c *conn, f func()) {
	_ = c.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if !c.closed.Load() {
			f()
		}
		return nil
	}))
}

// timeoutError is the net.Error a request that took longer than
// ReadTimeout gets, as fasthttp reports it to an ErrorHandler.
type timeoutError struct{}

func (timeoutError) Error() string   { return "evloop: request not read within the read timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// quietLogger drops gnet's debug and info lines (one per start) and
// passes the rest to the standard logger.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any)            {}
func (quietLogger) Infof(string, ...any)             {}
func (quietLogger) Warnf(format string, args ...any) { log.Printf("evloop: "+format, args...) }
func (quietLogger) Errorf(format string, args ...any) {
	log.Printf("evloop: "+format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) { log.Printf("evloop: "+format, args...) }

// plainError is the default ErrorHandler.
func plainError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body too large", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("request headers too large", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &nerr) && nerr.Timeout():
		ctx.Error("request timeout", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("malformed request", fasthttp.StatusBadRequest)
	}
}

// addrConn is the net.Conn a RequestCtx sees: the connection's addresses,
// copied when it opened (gnet's are for its loop only). Handlers do no I/O
// on it.
type addrConn struct{ local, remote net.Addr }

var errNoIO = errors.New("evloop: no I/O on a request's connection")

func (a *addrConn) Read([]byte) (int, error)         { return 0, errNoIO }
func (a *addrConn) Write([]byte) (int, error)        { return 0, errNoIO }
func (a *addrConn) Close() error                     { return nil }
func (a *addrConn) LocalAddr() net.Addr              { return a.local }
func (a *addrConn) RemoteAddr() net.Addr             { return a.remote }
func (a *addrConn) SetDeadline(time.Time) error      { return nil }
func (a *addrConn) SetReadDeadline(time.Time) error  { return nil }
func (a *addrConn) SetWriteDeadline(time.Time) error { return nil }
