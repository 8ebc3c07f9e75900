package distrib

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Tracker is the builder's in-process HTTP tracker (BEP 3, compact peers
// per BEP 23) over a bounded in-memory peer store. Only infohashes the
// builder published are tracked (a private tracker), so it cannot be used
// as an open tracker, and it dies and restarts with the builder it serves:
// nothing to supervise.
//
// It writes its bencoded responses itself: the module's handler
// (tracker/http/server) always encodes `failure reason`, `peers6` and
// `tracker id`, empty or not, and a present `failure reason` means the
// announce failed to every client but anacrolix (aria2c: "Tracker returned
// failure reason", no peers). docs/DECISIONS.md.
type Tracker struct {
	// Allowed reports whether an infohash (hex) may be tracked.
	Allowed func(infoHash string) bool
	// Interval is the re-announce interval handed to peers (default 30s).
	Interval time.Duration

	mu     sync.Mutex
	swarms map[[20]byte]map[netip.AddrPort]peerEntry
}

type peerEntry struct {
	seen time.Time
	left int64
}

// maxPeersPerSwarm bounds memory per torrent; an edge fleet is far smaller.
const maxPeersPerSwarm = 4096

// defaultNumWant is how many peers an announce gets without numwant.
const defaultNumWant = 50

// maxNumWant caps numwant (BEP 3 leaves it to the tracker).
const maxNumWant = 200

// Handler serves announces (mount it at /announce).
func (tr *Tracker) Handler() http.Handler {
	return http.HandlerFunc(tr.serveAnnounce)
}

func (tr *Tracker) interval() time.Duration {
	if tr.Interval <= 0 {
		return 30 * time.Second
	}
	return tr.Interval
}

// announce is one parsed announce request.
type announce struct {
	infoHash [20]byte
	addr     netip.AddrPort
	left     int64 // -1 when not given
	event    string
	numWant  int
	compact  bool
}

// parseAnnounce reads an announce's query (BEP 3). The peer's address is
// the connection's, with the announced port; an "ip" parameter is ignored
// (a private tracker must not let a peer announce someone else).
func parseAnnounce(r *http.Request) (announce, error) {
	q := r.URL.Query()
	var a announce
	ih := q.Get("info_hash")
	if len(ih) != 20 {
		return a, errors.New("info_hash must be 20 bytes")
	}
	copy(a.infoHash[:], ih)
	if len(q.Get("peer_id")) != 20 {
		return a, errors.New("peer_id must be 20 bytes")
	}
	port, err := strconv.ParseUint(q.Get("port"), 10, 16)
	if err != nil || port == 0 {
		return a, errors.New("port must be 1..65535")
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return a, errors.New("cannot tell your address")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return a, errors.New("cannot tell your address")
	}
	a.addr = netip.AddrPortFrom(ip.Unmap(), uint16(port))
	a.left = -1
	if v := q.Get("left"); v != "" {
		if a.left, err = strconv.ParseInt(v, 10, 64); err != nil || a.left < 0 {
			return a, errors.New("left must be a non-negative integer")
		}
	}
	switch a.event = q.Get("event"); a.event {
	case "", "started", "completed", "stopped", "empty":
	default:
		return a, fmt.Errorf("unknown event %q", a.event)
	}
	a.numWant = defaultNumWant
	if v := q.Get("numwant"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return a, errors.New("numwant must be a non-negative integer")
		}
		a.numWant = min(n, maxNumWant)
	}
	a.compact = q.Get("compact") != "0"
	return a, nil
}

func (tr *Tracker) serveAnnounce(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	a, err := parseAnnounce(r)
	if err == nil && tr.Allowed != nil && !tr.Allowed(hexHash(a.infoHash)) {
		err = errUnknownTorrent
	}
	if err != nil {
		// BEP 3: a failed announce is a 200 whose only key is the reason.
		_, _ = w.Write(failureResponse(err.Error()))
		return
	}
	peers, seeders, leechers := tr.track(a)
	_, _ = w.Write(announceResponse(peers, seeders, leechers, int(tr.interval()/time.Second), a.compact))
}

// track records (or, on "stopped", removes) the announcing peer and
// returns up to numWant other peers of the swarm with its counts.
func (tr *Tracker) track(a announce) (peers []netip.AddrPort, seeders, leechers int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.swarms == nil {
		tr.swarms = map[[20]byte]map[netip.AddrPort]peerEntry{}
	}
	sw := tr.swarms[a.infoHash]
	if sw == nil {
		sw = map[netip.AddrPort]peerEntry{}
		tr.swarms[a.infoHash] = sw
	}
	now := time.Now()
	for p, e := range sw {
		if now.Sub(e.seen) > 3*tr.interval() {
			delete(sw, p)
		}
	}
	switch _, known := sw[a.addr]; {
	case a.event == "stopped":
		delete(sw, a.addr)
	case known || len(sw) < maxPeersPerSwarm:
		sw[a.addr] = peerEntry{seen: now, left: a.left}
	}
	for p, e := range sw {
		if e.left == 0 {
			seeders++
		} else {
			leechers++
		}
		if p != a.addr && len(peers) < a.numWant && a.event != "stopped" {
			peers = append(peers, p)
		}
	}
	return peers, seeders, leechers
}

// failureResponse is d14:failure reason<n>:<reason>e.
func failureResponse(reason string) []byte {
	b := []byte("d14:failure reason")
	b = appendBString(b, reason)
	return append(b, 'e')
}

// announceResponse is the bencoded success response, keys in sorted order
// as bencode requires: complete, incomplete, interval, peers and, only when
// there are IPv6 peers, peers6. Compact peers are 6 bytes each (4 of IPv4,
// 2 of port, BEP 23) and IPv6 ones 18 in peers6 (BEP 7); otherwise peers is
// a list of {ip, port} dictionaries.
func announceResponse(peers []netip.AddrPort, seeders, leechers, interval int, compact bool) []byte {
	b := []byte("d8:completei")
	b = strconv.AppendInt(b, int64(seeders), 10)
	b = append(b, "e10:incompletei"...)
	b = strconv.AppendInt(b, int64(leechers), 10)
	b = append(b, "e8:intervali"...)
	b = strconv.AppendInt(b, int64(interval), 10)
	b = append(b, "e5:peers"...)
	if !compact {
		b = append(b, 'l')
		for _, p := range peers {
			b = append(b, "d2:ip"...)
			b = appendBString(b, p.Addr().String())
			b = append(b, "4:porti"...)
			b = strconv.AppendInt(b, int64(p.Port()), 10)
			b = append(b, "ee"...)
		}
		return append(b, "ee"...)
	}
	var v4, v6 []byte
	for _, p := range peers {
		ip := p.Addr().Unmap()
		if ip.Is4() {
			a := ip.As4()
			v4 = append(append(v4, a[:]...), byte(p.Port()>>8), byte(p.Port()))
		} else {
			a := ip.As16()
			v6 = append(append(v6, a[:]...), byte(p.Port()>>8), byte(p.Port()))
		}
	}
	b = appendBString(b, string(v4))
	if len(v6) > 0 {
		b = append(b, "6:peers6"...)
		b = appendBString(b, string(v6))
	}
	return append(b, 'e')
}

func appendBString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// Peers returns the number of peers tracked for an infohash (hex).
func (tr *Tracker) Peers(infoHash string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for ih, sw := range tr.swarms {
		if hexHash(ih) == infoHash {
			return len(sw)
		}
	}
	return 0
}

type trackerError string

func (e trackerError) Error() string { return string(e) }

const errUnknownTorrent = trackerError("torrent not published by this builder")

func hexHash(h [20]byte) string {
	const digits = "0123456789abcdef"
	var b [40]byte
	for i, c := range h {
		b[2*i], b[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(b[:])
}
