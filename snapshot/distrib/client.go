// Package distrib wraps anacrolix/torrent for snapshot distribution: one
// configured client per process (builder or edge), single-file torrents of
// *.snap files, seeding without re-hashing, resumable downloads, and byte
// counters split by BitTorrent peers and BEP 19 web seeds.
//
// Only the control plane imports this package (builder/publish,
// server/fetch); the edge's request path never sees torrent code.
//
// The client settings come from a trial of v1.59.1 on loopback (see
// docs/DISTRIBUTION.md): 16 MiB of request data per connection (the default
// 1 MiB stalls seeding), a 1 s keep-alive (a rate-limited connection can
// otherwise sit idle for a minute), TCP only, no DHT, no IPv6, no port
// forwarding, and outgoing dials bound to the client's own address so peers
// on 127.0.0.x see each other's real address.
package distrib

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/tracker"
	"golang.org/x/time/rate"
)

// Options configure a Client.
type Options struct {
	// BindIP is the address to listen on and dial from ("127.0.0.2"); empty
	// listens on every IPv4 address and leaves dials unbound.
	BindIP string
	// Port is the BitTorrent listen port; 0 picks a free one.
	Port int
	// Upload limits upload of piece data (BitTorrent); nil is unlimited. The
	// builder shares one limiter with its web seed so both count against the
	// same origin NIC budget.
	Upload *rate.Limiter
	// Seed keeps uploading complete torrents (the origin and every edge).
	Seed bool
	// Log receives the client's warnings; nil discards them.
	Log func(msg string, kv ...any)
	// WebSeedHeader is sent on web seed requests (none by default).
	WebSeedHeader http.Header
	// MaxConns bounds connections per torrent (0: the library's 50). The
	// origin uses a small value so it feeds a few edges at a time and the
	// rest fetch from them, instead of every edge pulling every piece from
	// the origin.
	MaxConns int
}

// Totals are cumulative byte counts over every torrent the client ever had.
type Totals struct {
	TorrentUp, TorrentDown, WebSeedDown int64
	BadPieces                           int64 // pieces that failed their hash check (corrupt or lying peers)
}

// Client is one BitTorrent client and the torrents it holds.
type Client struct {
	cl   *torrent.Client
	opts Options
	web  atomic.Int64 // web seed body bytes read, from the transport
	dial *net.Dialer  // bound to BindIP

	mu      sync.Mutex
	ts      map[metainfo.Hash]*Torrent
	dropped Totals
}

// NewClient starts a client listening on BindIP:Port.
func NewClient(o Options) (*Client, error) {
	cfg := torrent.NewDefaultClientConfig()
	cfg.DataDir = "" // storage is per torrent (see Seed and Download)
	cfg.DefaultStorage = nopStorage{}
	cfg.Seed = o.Seed
	cfg.NoDHT = true
	cfg.DisableIPv6 = true
	cfg.DisableUTP = true
	cfg.NoDefaultPortForwarding = true
	cfg.DisableWebtorrent = true
	cfg.DisableAcceptRateLimiting = true
	cfg.MaxAllocPeerRequestDataPerConn = 16 << 20
	cfg.KeepAliveTimeout = time.Second
	cfg.ListenPort = o.Port
	if o.MaxConns > 0 {
		cfg.EstablishedConnsPerTorrent = o.MaxConns
		cfg.HalfOpenConnsPerTorrent = max(1, o.MaxConns/2)
	}
	cfg.ListenHost = func(string) string { return o.BindIP }
	cfg.Logger = alog.Default.FilterLevel(alog.Critical)
	cfg.Slogger = slog.New(slog.DiscardHandler)
	if o.Upload != nil {
		cfg.UploadRateLimiter = o.Upload
	}
	var dialer net.Dialer
	if o.BindIP != "" {
		ip := net.ParseIP(o.BindIP)
		if ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("distrib: BindIP %q is not an IPv4 address", o.BindIP)
		}
		cfg.PublicIp4 = ip.To4()
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
		// The listen socket's own dialer does not bind its source address;
		// ours does, so a peer on 127.0.0.3 is reached from 127.0.0.2 and
		// not from 127.0.0.1 (which would make everyone look like one IP).
		cfg.DialForPeerConns = false
	}
	dialer.Timeout = 5 * time.Second
	cfg.TrackerDialContext = dialer.DialContext
	cfg.HTTPDialContext = dialer.DialContext
	c := &Client{opts: o, ts: map[metainfo.Hash]*Torrent{}, dial: &dialer}
	cfg.WebTransport = &countingTransport{
		rt:     &http.Transport{DialContext: dialer.DialContext, MaxConnsPerHost: 4, ResponseHeaderTimeout: 10 * time.Second},
		n:      &c.web,
		header: o.WebSeedHeader,
	}
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("distrib: %w", err)
	}
	c.cl = cl
	if o.BindIP != "" {
		cl.AddDialer(torrent.NetworkDialer{Network: "tcp4", Dialer: &dialer})
	}
	return c, nil
}

// Addr is the BitTorrent listen address.
func (c *Client) Addr() string {
	ip := c.opts.BindIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	return net.JoinHostPort(ip, strconv.Itoa(c.cl.LocalPort()))
}

// Close drops every torrent and stops the client.
func (c *Client) Close() error {
	c.mu.Lock()
	ts := make([]*Torrent, 0, len(c.ts))
	for _, t := range c.ts {
		ts = append(ts, t)
	}
	c.mu.Unlock()
	for _, t := range ts {
		t.Drop()
	}
	return errors.Join(c.cl.Close()...)
}

// BadPeerIPs lists the IPs banned for sending pieces that failed their hash.
func (c *Client) BadPeerIPs() []string { return c.cl.BadPeerIPs() }

// Totals sums byte counts over live and dropped torrents.
func (c *Client) Totals() Totals {
	c.mu.Lock()
	tot := c.dropped
	for _, t := range c.ts {
		tot.add(t.stats())
	}
	c.mu.Unlock()
	tot.WebSeedDown = c.web.Load()
	return tot
}

func (a *Totals) add(b Totals) {
	a.TorrentUp += b.TorrentUp
	a.TorrentDown += b.TorrentDown
	a.BadPieces += b.BadPieces
}

// Torrent is one snapshot being seeded or downloaded.
type Torrent struct {
	t    *torrent.Torrent
	c    *Client
	st   *fileStore
	once sync.Once
}

// Seed adds mi with its complete file at path and seeds it without hashing:
// the caller vouches for the data (it built it, or verified its xxhash64
// against a signed manifest).
func (c *Client) Seed(mi *metainfo.MetaInfo, path string) (*Torrent, error) {
	return c.add(mi, StoreOptions{Path: path, Complete: true})
}

// Download adds mi to be fetched into so.Path. Completed pieces are recorded
// in so.PiecesPath (when set), so a restarted process resumes instead of
// starting over.
func (c *Client) Download(mi *metainfo.MetaInfo, so StoreOptions) (*Torrent, error) {
	so.Complete = false
	return c.add(mi, so)
}

func (c *Client) add(mi *metainfo.MetaInfo, so StoreOptions) (*Torrent, error) {
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("distrib: info: %w", err)
	}
	if len(info.Files) != 0 || info.Length <= 0 {
		return nil, errors.New("distrib: only single-file torrents are supported")
	}
	ih := mi.HashInfoBytes()
	c.mu.Lock()
	if old, ok := c.ts[ih]; ok {
		c.mu.Unlock()
		return old, nil
	}
	c.mu.Unlock()
	st, err := openStore(so, &info)
	if err != nil {
		return nil, err
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		st.close()
		return nil, err
	}
	spec.Storage = st
	spec.Webseeds = nil // added by the caller when the swarm stalls
	spec.DisableInitialPieceCheck = true
	tt, _, err := c.cl.AddTorrentSpec(spec)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("distrib: %w", err)
	}
	t := &Torrent{t: tt, c: c, st: st}
	c.mu.Lock()
	c.ts[ih] = t
	c.mu.Unlock()
	if !so.Complete {
		tt.DownloadAll()
	}
	return t, nil
}

// InfoHash is the torrent's v1 infohash in hex.
func (t *Torrent) InfoHash() string { return t.t.InfoHash().HexString() }

// Length is the file size.
func (t *Torrent) Length() int64 { return t.t.Length() }

// BytesCompleted counts bytes of verified pieces.
func (t *Torrent) BytesCompleted() int64 { return t.t.BytesCompleted() }

// NumPieces is the piece count.
func (t *Torrent) NumPieces() int { return t.t.NumPieces() }

// PieceComplete reports whether piece i is verified.
func (t *Torrent) PieceComplete(i int) bool { return t.t.PieceState(i).Complete }

// Done is closed when every piece is verified.
func (t *Torrent) Done() <-chan struct{} { return t.t.Complete().On() }

// Peers is the number of connected BitTorrent peers.
func (t *Torrent) Peers() int { return len(t.t.PeerConns()) }

// AddPeers tells the torrent about peers ("ip:port") directly.
func (t *Torrent) AddPeers(addrs []string) {
	var ps []torrent.PeerInfo
	for _, a := range addrs {
		ps = append(ps, torrent.PeerInfo{Addr: stringAddr(a)})
	}
	t.t.AddPeers(ps)
}

type stringAddr string

func (s stringAddr) Network() string { return "tcp" }
func (s stringAddr) String() string  { return string(s) }

// AddWebSeed adds a BEP 19 URL to fetch pieces from over HTTP.
func (t *Torrent) AddWebSeed(url string) { t.t.AddWebSeeds([]string{url}) }

// OnWriteError sets what happens when a piece cannot be written (disk full):
// downloading is paused; ResumeDownload restarts it.
func (t *Torrent) OnWriteError(f func(error)) {
	t.t.SetOnWriteChunkError(func(err error) {
		t.t.DisallowDataDownload()
		f(err)
	})
}

// ResumeDownload re-allows downloading after a write error.
func (t *Torrent) ResumeDownload() { t.t.AllowDataDownload() }

// Drop stops seeding or downloading and closes the file; the file and the
// piece record stay on disk.
func (t *Torrent) Drop() {
	t.once.Do(func() {
		s := t.stats()
		t.c.mu.Lock()
		t.c.dropped.add(s)
		delete(t.c.ts, t.t.InfoHash())
		t.c.mu.Unlock()
		t.t.Drop()
		<-t.t.Closed()
		t.st.close()
	})
}

func (t *Torrent) stats() Totals {
	s := t.t.Stats()
	return Totals{
		TorrentUp:   s.PeerConns.BytesWrittenData.Int64(),
		TorrentDown: s.PeerConns.BytesReadUsefulData.Int64(),
		BadPieces:   s.PiecesDirtiedBad.Int64(),
	}
}

// countingTransport counts web seed response body bytes.
type countingTransport struct {
	rt     http.RoundTripper
	n      *atomic.Int64
	header http.Header
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	for k, v := range c.header {
		r.Header[k] = v
	}
	resp, err := c.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: c.n}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// WaitDone waits for t to complete or ctx to end.
func (t *Torrent) WaitDone(ctx context.Context) error {
	select {
	case <-t.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PeerAddrs lists the connected BitTorrent peers' addresses.
func (t *Torrent) PeerAddrs() []string {
	var out []string
	for _, pc := range t.t.PeerConns() {
		out = append(out, pc.RemoteAddr.String())
	}
	return out
}

// KnownPeers is how many peer addresses the torrent knows (connected or not).
func (t *Torrent) KnownPeers() int { return len(t.t.KnownSwarm()) }

// Announce asks the tracker at url for the swarm now and adds the peers it
// returns. The library announces at most once a minute; an edge joining at
// the same moment as others would otherwise not learn of them for that long,
// and would have nobody to fetch from but a busy origin. It re-registers this
// client too, exactly as a regular announce does.
func (t *Torrent) Announce(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	left := t.Length() - t.BytesCompleted()
	req := tracker.AnnounceRequest{
		InfoHash: t.t.InfoHash(), PeerId: t.c.cl.PeerID(), Left: left, NumWant: 200,
		Port: uint16(t.c.cl.LocalPort()), Event: tracker.None,
	}
	a := tracker.Announce{TrackerUrl: url, Request: req, DialContext: t.c.dial.DialContext, Context: ctx,
		Logger: alog.Default.FilterLevel(alog.Critical)}
	if ip := t.c.opts.BindIP; ip != "" {
		a.ClientIp4 = krpc.NodeAddr{IP: net.ParseIP(ip).To4()}
	}
	res, err := a.Do()
	if err != nil {
		return 0, err
	}
	var ps []torrent.PeerInfo
	self := t.c.Addr()
	for _, p := range res.Peers {
		addr := net.JoinHostPort(net.IP(p.IP).String(), strconv.Itoa(p.Port))
		if addr == self {
			continue
		}
		ps = append(ps, torrent.PeerInfo{Addr: stringAddr(addr), Source: torrent.PeerSourceTracker})
	}
	return t.t.AddPeers(ps), nil
}
