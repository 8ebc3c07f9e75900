// Package aerotest is an in-memory Aerospike server speaking enough of the
// real wire protocol for the official Go client (v7) to connect, discover a
// one-node cluster and run single-record reads, writes and operate calls
// (including the map operations the profile store uses). CI has no
// Aerospike server; tests start one of these on a loopback port instead.
//
// What it speaks:
//
//   - info protocol (message type 1): node, build, features, cluster-name,
//     partition-generation, peers-generation, peers-clear-std (and the
//     -alt/-tls variants), service-clear-std, replicas, replicas-all,
//     replicas-master, partitions, namespaces, statistics.
//   - AS_MSG (message type 3): get (all bins, selected bins, header only),
//     put/replace/create-only/update-only, generation checks, delete,
//     touch, integer add, and operate with read/write ops plus map ops
//     put, increment, decrement, clear, set-type, size, get/remove by key
//     and by key range, with record TTLs.
//
// Anything else (batch, scan, query, UDF, filter expressions, nested CDT
// contexts, login) gets an error result code rather than a wrong answer.
//
// Knobs for fault tests: SetDelay, SetFault (garbage answers, answers cut
// off mid-way, requests never answered), DropConnections, DropNextRequests
// and Close; a refused connection is simply a closed port. Ordinary reads
// and writes are tested against the real server (internal/aerokit): this
// fake exists for the faults a real server will not produce on demand.
package aerotest

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	partitionCount = 4096
	protoVersion   = 2
	msgTypeInfo    = 1
	msgTypeAS      = 3
	maxMessage     = 16 << 20
	citrusEpoch    = 1262304000 // 2010-01-01, the server's time origin
)

// Server is a single-node in-memory Aerospike server. It is safe for
// concurrent use; its zero value is not usable, call Start or New.
type Server struct {
	ln          net.Listener
	port        int
	nodeName    string
	clusterName string
	namespaces  []string

	mu      sync.Mutex
	records map[recordKey]*record
	last    Request

	connMu sync.Mutex
	conns  map[*serverConn]struct{}

	delay      atomic.Int64 // time.Duration before answering data requests
	fault      atomic.Int32 // Fault applied to data requests
	dropNext   atomic.Int64 // data requests to answer by closing the socket
	infoReqs   atomic.Uint64
	dataReqs   atomic.Uint64
	accepted   atomic.Uint64
	closed     chan struct{}
	closeOnce  sync.Once
	wg         sync.WaitGroup
	replicas   string // precomputed partition bitmap (all partitions)
	peersValue string
}

// Request describes the last data request served, for tests that check
// what the client asked for (e.g. bin selection).
type Request struct {
	Namespace string
	Set       string
	// ReadAll is true when the client asked for every bin.
	ReadAll bool
	// ReadBins lists bins named by read operations, in request order.
	ReadBins []string
	// Write is true for requests that modify the record.
	Write bool
	// Ops counts the operations in the request.
	Ops int
}

// Stats counts what the server has seen.
type Stats struct {
	Connections  uint64 // connections accepted
	InfoRequests uint64
	DataRequests uint64
	Records      int // live records
}

type recordKey struct {
	ns     string
	digest [20]byte
}

type record struct {
	set      string
	bins     map[string]binValue
	gen      uint16
	voidTime int64 // unix seconds; 0 = never expires
}

type binValue struct {
	ptype byte
	data  []byte
}

type serverConn struct {
	net.Conn
	done     chan struct{}
	doneOnce sync.Once
}

func (c *serverConn) drop() {
	c.doneOnce.Do(func() {
		close(c.done)
		c.Conn.Close()
	})
}

// Start listens on a free 127.0.0.1 port and serves the given namespaces
// ("test" when none are given).
func Start(namespaces ...string) (*Server, error) {
	return StartOn("127.0.0.1:0", namespaces...)
}

// StartOn is Start on a chosen loopback address ("127.0.0.1:3000"), for
// benchmarks and demos that run an edge against it as a separate process.
func StartOn(addr string, namespaces ...string) (*Server, error) {
	if len(namespaces) == 0 {
		namespaces = []string{"test"}
	}
	for _, ns := range namespaces {
		if ns == "" || len(ns) > 31 || strings.ContainsAny(ns, ";:\n\t") {
			return nil, fmt.Errorf("aerotest: bad namespace name %q", ns)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("aerotest: listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	s := &Server{
		ln:          ln,
		port:        port,
		nodeName:    fmt.Sprintf("BB9%013X", port),
		clusterName: "aerotest",
		namespaces:  append([]string(nil), namespaces...),
		records:     make(map[recordKey]*record),
		conns:       make(map[*serverConn]struct{}),
		closed:      make(chan struct{}),
		peersValue:  fmt.Sprintf("1,%d,[]", port),
	}
	bitmap := make([]byte, partitionCount/8)
	for i := range bitmap {
		bitmap[i] = 0xff
	}
	s.replicas = base64.StdEncoding.EncodeToString(bitmap)
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// New is Start for tests: it fails t on error and closes the server when
// the test ends.
func New(t testing.TB, namespaces ...string) *Server {
	t.Helper()
	s, err := Start(namespaces...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Addr returns "127.0.0.1:PORT", a seed for the client.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Host returns the listening IP address.
func (s *Server) Host() string { return "127.0.0.1" }

// Port returns the listening port.
func (s *Server) Port() int { return s.port }

// NodeName returns the node name reported by the "node" info command.
func (s *Server) NodeName() string { return s.nodeName }

// SetDelay makes every data request (not info requests, so the cluster
// stays healthy) wait d before it is answered: a slow server. Zero
// restores immediate answers. Delayed requests end early if their
// connection is dropped or the server closes.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Fault is a way to answer data requests wrongly (info requests stay
// correct, so the client keeps the node in its cluster).
type Fault int32

// Faults for SetFault.
const (
	// FaultNone answers correctly.
	FaultNone Fault = iota
	// FaultGarbage answers with a frame of the right length whose body is
	// not an AS_MSG (a corrupt or foreign server).
	FaultGarbage
	// FaultBadHeader answers with a header of a wrong protocol version
	// claiming an enormous body.
	FaultBadHeader
	// FaultTruncate writes the first half of the real answer and closes
	// the connection (a server dying mid-answer).
	FaultTruncate
	// FaultHang reads requests and never answers them, keeping the
	// connection open (a hung server) until it is dropped or the server
	// closes.
	FaultHang
)

// SetFault makes every data request answered with f from now on.
func (s *Server) SetFault(f Fault) { s.fault.Store(int32(f)) }

// DropConnections closes every open client connection at once, including
// ones with a request in flight (e.g. waiting out SetDelay). New
// connections are accepted as usual.
func (s *Server) DropConnections() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.conns {
		c.drop()
	}
}

// DropNextRequests makes the next n data requests close their connection
// after the request has been read, without an answer.
func (s *Server) DropNextRequests(n int) { s.dropNext.Store(int64(n)) }

// LastRequest returns what the most recent data request asked for.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.ReadBins = append([]string(nil), r.ReadBins...)
	return r
}

// Stats returns counters and the number of live records.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.records)
	s.mu.Unlock()
	return Stats{
		Connections:  s.accepted.Load(),
		InfoRequests: s.infoReqs.Load(),
		DataRequests: s.dataReqs.Load(),
		Records:      n,
	}
}

// Close stops listening, closes all connections and waits for handlers.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.ln.Close()
		s.DropConnections()
	})
	s.wg.Wait()
	return nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // listener closed
		}
		sc := &serverConn{Conn: c, done: make(chan struct{})}
		s.connMu.Lock()
		select {
		case <-s.closed:
			s.connMu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[sc] = struct{}{}
		s.connMu.Unlock()
		s.accepted.Add(1)
		s.wg.Add(1)
		go s.serve(sc)
	}
}

func (s *Server) serve(c *serverConn) {
	defer s.wg.Done()
	defer func() {
		c.drop()
		s.connMu.Lock()
		delete(s.conns, c)
		s.connMu.Unlock()
	}()
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		version, typ := hdr[0], hdr[1]
		size := binary.BigEndian.Uint64(hdr[:]) & 0xffffffffffff
		if version != protoVersion || size > maxMessage {
			return
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		var resp []byte
		switch typ {
		case msgTypeInfo:
			s.infoReqs.Add(1)
			resp = frame(msgTypeInfo, s.info(body))
		case msgTypeAS:
			s.dataReqs.Add(1)
			if s.dropNext.Load() > 0 && s.dropNext.Add(-1) >= 0 {
				return
			}
			if d := time.Duration(s.delay.Load()); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.done:
					t.Stop()
					return
				case <-s.closed:
					t.Stop()
					return
				}
			}
			resp = s.handleMessage(body)
			switch Fault(s.fault.Load()) {
			case FaultGarbage:
				g := make([]byte, len(resp)-8)
				for i := range g {
					g[i] = byte(i*131 + 7)
				}
				resp = frame(msgTypeAS, g)
			case FaultBadHeader:
				resp = []byte{9, msgTypeAS, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}
			case FaultTruncate:
				c.Write(resp[:len(resp)/2])
				return
			case FaultHang:
				select {
				case <-c.done:
				case <-s.closed:
				}
				return
			}
		default: // admin (login) and compressed messages are not supported
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// frame prepends the 8-byte proto header.
func frame(typ byte, body []byte) []byte {
	out := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint64(out, uint64(len(body))|uint64(protoVersion)<<56|uint64(typ)<<48)
	return append(out, body...)
}

// info answers a newline-separated list of info commands in order, as
// "name\tvalue\n" lines.
func (s *Server) info(body []byte) []byte {
	var b strings.Builder
	for _, name := range strings.Split(string(body), "\n") {
		if name == "" {
			continue
		}
		b.WriteString(name)
		b.WriteByte('\t')
		b.WriteString(s.infoValue(name))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func (s *Server) infoValue(name string) string {
	switch name {
	case "node":
		return s.nodeName
	case "build":
		return "7.1.0.0"
	case "version":
		return "Aerospike Community Edition build 7.1.0.0"
	case "edition":
		return "Aerospike Community Edition"
	case "features":
		return "batch-index;blob-bits;cdt-list;cdt-map;cluster-stable;float;geo;peers;pipelining;pquery;pscans;query-show;replicas;replicas-all;replicas-master;truncate-namespace;udf"
	case "cluster-name":
		return s.clusterName
	case "partition-generation", "peers-generation":
		return "1"
	case "peers-clear-std", "peers-clear-alt", "peers-tls-std", "peers-tls-alt":
		return s.peersValue // generation 1, default port, no peers
	case "service-clear-std", "service-clear-alt", "service":
		return s.Addr()
	case "services", "services-alumni", "services-alternate":
		return ""
	case "partitions":
		return strconv.Itoa(partitionCount)
	case "namespaces":
		return strings.Join(s.namespaces, ";")
	case "replicas", "replicas-all", "replicas-master":
		var b strings.Builder
		for _, ns := range s.namespaces {
			switch name {
			case "replicas": // <ns>:<regime>,<count>,<bitmap>;
				fmt.Fprintf(&b, "%s:0,1,%s;", ns, s.replicas)
			case "replicas-all": // <ns>:<count>,<bitmap>;
				fmt.Fprintf(&b, "%s:1,%s;", ns, s.replicas)
			default: // <ns>:<bitmap>;
				fmt.Fprintf(&b, "%s:%s;", ns, s.replicas)
			}
		}
		return b.String()
	case "rack-ids":
		parts := make([]string, len(s.namespaces))
		for i, ns := range s.namespaces {
			parts[i] = ns + ":0"
		}
		return strings.Join(parts, ";")
	case "statistics":
		st := s.Stats()
		return fmt.Sprintf("cluster_size=1;objects=%d;client_connections=%d", st.Records, s.openConns())
	}
	return "ERROR::unrecognized command"
}

func (s *Server) openConns() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.conns)
}
