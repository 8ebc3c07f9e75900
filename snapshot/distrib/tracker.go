package distrib

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/tracker"
	httpTrackerServer "github.com/anacrolix/torrent/tracker/http/server"
	trackerServer "github.com/anacrolix/torrent/tracker/server"
	"github.com/anacrolix/torrent/tracker/udp"
)

// Tracker is the builder's in-process HTTP tracker: the module's own
// announce handler (tracker/http/server) over a bounded in-memory peer store.
// Only infohashes the builder published are tracked (a private tracker), so
// it cannot be used as an open tracker, and it dies and restarts with the
// builder it serves: nothing to supervise.
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

// Handler serves announces (mount it at /announce).
func (tr *Tracker) Handler() http.Handler {
	return httpTrackerServer.Handler{Announce: &trackerServer.AnnounceHandler{AnnounceTracker: tr}}
}

func (tr *Tracker) interval() time.Duration {
	if tr.Interval <= 0 {
		return 30 * time.Second
	}
	return tr.Interval
}

// TrackAnnounce records or removes the announcing peer.
func (tr *Tracker) TrackAnnounce(_ context.Context, req udp.AnnounceRequest, addr trackerServer.AnnounceAddr) error {
	if tr.Allowed != nil && !tr.Allowed(hexHash(req.InfoHash)) {
		return errUnknownTorrent
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.swarms == nil {
		tr.swarms = map[[20]byte]map[netip.AddrPort]peerEntry{}
	}
	sw := tr.swarms[req.InfoHash]
	if sw == nil {
		sw = map[netip.AddrPort]peerEntry{}
		tr.swarms[req.InfoHash] = sw
	}
	now := time.Now()
	for a, e := range sw {
		if now.Sub(e.seen) > 3*tr.interval() {
			delete(sw, a)
		}
	}
	if req.Event == tracker.Stopped {
		delete(sw, addr)
		return nil
	}
	if _, ok := sw[addr]; !ok && len(sw) >= maxPeersPerSwarm {
		return nil
	}
	sw[addr] = peerEntry{seen: now, left: req.Left}
	return nil
}

// Scrape reports seeders and leechers.
func (tr *Tracker) Scrape(_ context.Context, ihs []trackerServer.InfoHash) ([]udp.ScrapeInfohashResult, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]udp.ScrapeInfohashResult, len(ihs))
	for i, ih := range ihs {
		for _, e := range tr.swarms[ih] {
			if e.left == 0 {
				out[i].Seeders++
			} else {
				out[i].Leechers++
			}
		}
	}
	return out, nil
}

// GetPeers returns the swarm's other peers.
func (tr *Tracker) GetPeers(_ context.Context, ih trackerServer.InfoHash, opts trackerServer.GetPeersOpts, remote trackerServer.AnnounceAddr) trackerServer.ServerAnnounceResult {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	max := opts.MaxCount.UnwrapOr(200)
	var res trackerServer.ServerAnnounceResult
	var seeders, leechers int32
	for a, e := range tr.swarms[ih] {
		if e.left == 0 {
			seeders++
		} else {
			leechers++
		}
		if a == remote || uint(len(res.Peers)) >= max {
			continue
		}
		res.Peers = append(res.Peers, trackerServer.PeerInfo{AnnounceAddr: a})
	}
	res.Interval = generics.Some(int32(tr.interval() / time.Second))
	res.Seeders = generics.Some(seeders)
	res.Leechers = generics.Some(leechers)
	return res
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
