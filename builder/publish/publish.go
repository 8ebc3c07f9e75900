// Package publish is `adbuilder serve`: it rebuilds the snapshot when the
// inventory changes, makes a private .torrent for each snapshot and seeds it,
// runs the tracker the edges meet at, and publishes one signed manifest per
// channel. A new build goes to staging; Promote moves a version to
// production and Rollback moves production back to the version before.
package publish

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/internal/atomicfile"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/snapshot/distrib"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

// Options configure a Publisher.
type Options struct {
	Input string // inventory directory, watched for changes
	Data  string // snapshots/, torrents/, channels.json live here
	Key   ed25519.PrivateKey
	// PublicURL is the base URL edges reach this builder's HTTP at
	// (manifests, .torrent files, tracker, web seed).
	PublicURL string
	// Keep is how many built snapshots stay on disk (default 5); the
	// channels' versions and production's previous version are kept too.
	Keep int
	// BindIP and PeerPort place the BitTorrent listener.
	BindIP   string
	PeerPort int
	// UploadRate caps the origin's upload in bytes/s, BitTorrent and web
	// seed together (0 = unlimited).
	UploadRate int64
	// MaxPeers bounds the edges the origin uploads to at once (0: 50).
	MaxPeers    int
	PieceLength int64
	// Poll is how often the input directory is checked (default 2s).
	Poll time.Duration
	// Created overrides the snapshot data time of builds (zero: the newest
	// input's modification time, as `adbuilder build`).
	Created time.Time
	Log     func(event string, kv ...any)
}

// state is channels.json.
type state struct {
	Seq        uint64   `json:"seq"`
	Staging    string   `json:"staging,omitempty"`
	Production string   `json:"production,omitempty"`
	History    []string `json:"production_history,omitempty"` // production versions, oldest first; the last is current
	Versions   []string `json:"versions"`                     // built, oldest first
	Inputs     string   `json:"inputs,omitempty"`             // fingerprint of the inputs last built: a restart does not rebuild them
}

// Publisher is a running `adbuilder serve`.
type Publisher struct {
	o       Options
	cl      *distrib.Client
	limiter *rate.Limiter
	tracker *distrib.Tracker
	m       *metrics

	buildMu sync.Mutex // one build at a time

	mu        sync.Mutex
	st        state
	seeding   map[string]*distrib.Torrent // version -> torrent
	infoHash  map[string]string           // version -> infohash hex
	manifests map[string][]byte           // channel -> signed envelope
	lastErr   string
	lastErrAt time.Time
	lastPrint string // input fingerprint of the last build attempt
}

// New loads the data directory, starts the BitTorrent client and seeds every
// snapshot it already has.
func New(o Options) (*Publisher, error) {
	if o.Keep <= 0 {
		o.Keep = 5
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.PieceLength == 0 {
		o.PieceLength = distrib.DefaultPieceLength
	}
	if len(o.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("publish: a signing key is required")
	}
	o.PublicURL = strings.TrimSuffix(o.PublicURL, "/")
	if !strings.HasPrefix(o.PublicURL, "http://") && !strings.HasPrefix(o.PublicURL, "https://") {
		return nil, fmt.Errorf("publish: public URL %q must be http(s)://host:port", o.PublicURL)
	}
	for _, d := range []string{o.snapDir(), o.torrentDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	p := &Publisher{o: o, seeding: map[string]*distrib.Torrent{}, infoHash: map[string]string{}, manifests: map[string][]byte{}}
	if o.UploadRate > 0 {
		// Burst: a few 16 KiB chunks, so the cap holds over short windows.
		p.limiter = rate.NewLimiter(rate.Limit(o.UploadRate), 256<<10)
	}
	p.tracker = &distrib.Tracker{Allowed: p.published}
	p.m = newMetrics(p)
	if b, err := os.ReadFile(o.statePath()); err == nil {
		if err := json.Unmarshal(b, &p.st); err != nil {
			return nil, fmt.Errorf("publish: %s: %w", o.statePath(), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	p.lastPrint = p.st.Inputs
	cl, err := distrib.NewClient(distrib.Options{BindIP: o.BindIP, Port: o.PeerPort, Upload: p.limiter, Seed: true, MaxConns: o.MaxPeers})
	if err != nil {
		return nil, err
	}
	p.cl = cl
	for _, v := range slices.Clone(p.st.Versions) {
		if err := p.seed(v); err != nil {
			p.log("seed_failed", "version", v, "err", err)
		}
	}
	if err := p.resign(); err != nil {
		cl.Close()
		return nil, err
	}
	return p, nil
}

func (o *Options) snapDir() string    { return filepath.Join(o.Data, "snapshots") }
func (o *Options) torrentDir() string { return filepath.Join(o.Data, "torrents") }
func (o *Options) statePath() string  { return filepath.Join(o.Data, "channels.json") }
func (o *Options) snapPath(v string) string {
	return filepath.Join(o.snapDir(), v+".snap")
}
func (o *Options) torrentPath(v string) string { return filepath.Join(o.torrentDir(), v+".torrent") }

// Close stops seeding.
func (p *Publisher) Close() error { return p.cl.Close() }

// PeerAddr is the builder's BitTorrent address.
func (p *Publisher) PeerAddr() string { return p.cl.Addr() }

// Totals reports the builder's BitTorrent byte counts.
func (p *Publisher) Totals() distrib.Totals { return p.cl.Totals() }

// WebSeedBytes is what the web seed has sent.
func (p *Publisher) WebSeedBytes() int64 { return p.m.webseedUp.Load() }

func (p *Publisher) log(event string, kv ...any) {
	if p.o.Log != nil {
		p.o.Log(event, kv...)
	}
}

func (p *Publisher) published(infoHash string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ih := range p.infoHash {
		if ih == infoHash {
			return true
		}
	}
	return false
}

// seed makes (or loads) version's .torrent and seeds its file.
func (p *Publisher) seed(v string) error {
	path := p.o.snapPath(v)
	var mi *metainfo.MetaInfo
	if b, err := os.ReadFile(p.o.torrentPath(v)); err == nil {
		if mi, err = metainfo.Load(strings.NewReader(string(b))); err != nil {
			mi = nil
		}
	}
	if mi == nil {
		var err error
		mi, err = distrib.MakeTorrent(path, p.o.PieceLength, p.o.PublicURL+"/announce", p.o.PublicURL+"/v1/webseed/")
		if err != nil {
			return err
		}
		b, err := distrib.EncodeTorrent(mi)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(p.o.torrentPath(v), b); err != nil {
			return err
		}
	}
	// Whitelist the infohash in the tracker first: the client announces as
	// soon as the torrent is added, and a refused announce would keep the
	// origin out of the swarm until its next one, a minute later.
	ih := mi.HashInfoBytes().HexString()
	p.mu.Lock()
	p.infoHash[v] = ih
	p.mu.Unlock()
	t, err := p.cl.Seed(mi, path)
	if err != nil {
		p.mu.Lock()
		delete(p.infoHash, v)
		p.mu.Unlock()
		return err
	}
	p.mu.Lock()
	p.seeding[v] = t
	p.mu.Unlock()
	p.log("seeding", "version", v, "infohash", t.InfoHash(), "bytes", t.Length())
	return nil
}

// Run watches the input directory and builds when it changes (and has
// stayed unchanged for one poll, so a half-copied export is not built).
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(p.o.Poll)
	defer t.Stop()
	prev := ""
	for {
		fp := fingerprint(p.o.Input)
		p.mu.Lock()
		last := p.lastPrint
		p.mu.Unlock()
		if fp != "" && fp == prev && fp != last {
			if _, err := p.Build(); err != nil {
				p.log("build_failed", "err", err)
			}
		}
		prev = fp
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fingerprint names the input files with their sizes and times.
func fingerprint(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// Build builds the inventory now, seeds the result and points staging at
// it. A version already built is only re-pointed.
func (p *Publisher) Build() (string, error) {
	p.buildMu.Lock()
	defer p.buildMu.Unlock()
	fp := fingerprint(p.o.Input)
	p.mu.Lock()
	p.lastPrint = fp
	p.mu.Unlock()
	tmp := filepath.Join(p.o.Data, ".build")
	_ = os.RemoveAll(tmp)
	defer os.RemoveAll(tmp)
	start := time.Now()
	res, err := builder.Build(builder.Options{Input: p.o.Input, Out: tmp, Created: p.o.Created,
		State: filepath.Join(p.o.Data, builder.StateFile)}) // outlives the temp dir
	if err != nil {
		p.m.builds.WithLabelValues("failed").Inc()
		var ve *inventory.ValidationError
		if errors.As(err, &ve) {
			err = fmt.Errorf("inventory refused (%d problems; nothing published):\n%s", ve.Total, ve.Error())
		}
		p.noteErr(err)
		return "", err
	}
	v := res.Manifest.Version
	if _, err := os.Stat(p.o.snapPath(v)); err != nil {
		// New version: move it in (same file system), never over a file
		// that is being seeded.
		if err := os.Rename(res.ManifestPath, filepath.Join(p.o.snapDir(), v+".manifest.json")); err != nil {
			return "", err
		}
		if err := os.Rename(res.Path, p.o.snapPath(v)); err != nil {
			return "", err
		}
		syncDir(p.o.snapDir())
	}
	p.mu.Lock()
	_, seeding := p.seeding[v]
	p.mu.Unlock()
	if !seeding {
		if err := p.seed(v); err != nil {
			p.noteErr(err)
			return "", err
		}
	}
	p.mu.Lock()
	if !slices.Contains(p.st.Versions, v) {
		p.st.Versions = append(p.st.Versions, v)
	}
	p.st.Staging = v
	p.st.Inputs = fp
	err = p.commitLocked()
	p.mu.Unlock()
	if err != nil {
		return "", err
	}
	p.m.builds.WithLabelValues("ok").Inc()
	p.log("built", "version", v, "bytes", res.Manifest.Size, "xxhash64", res.Manifest.XXHash64, "took", time.Since(start).Round(time.Millisecond), "channel", manifestsig.Staging)
	p.prune()
	return v, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (p *Publisher) noteErr(err error) {
	p.mu.Lock()
	p.lastErr, p.lastErrAt = err.Error(), time.Now()
	p.mu.Unlock()
}

// ErrUnknownVersion is returned for a version this builder does not have.
var ErrUnknownVersion = errors.New("publish: unknown version")

// Promote points production at version (a built one still on disk).
func (p *Publisher) Promote(version string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seeding[version]; !ok {
		return fmt.Errorf("%w %q (have %s)", ErrUnknownVersion, version, strings.Join(p.st.Versions, ", "))
	}
	if p.st.Production == version {
		return nil
	}
	p.st.Production = version
	p.st.History = append(p.st.History, version)
	if len(p.st.History) > 100 {
		p.st.History = p.st.History[len(p.st.History)-100:]
	}
	p.log("promoted", "version", version)
	return p.commitLocked()
}

// Rollback points production back at the version it served before the
// current one, and returns it.
func (p *Publisher) Rollback() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.st.History
	for len(h) >= 2 {
		prev := h[len(h)-2]
		if _, ok := p.seeding[prev]; ok {
			p.st.History = h[:len(h)-1]
			p.st.Production = prev
			p.log("rolled_back", "version", prev)
			return prev, p.commitLocked()
		}
		// Pruned meanwhile: skip it.
		h = append(h[:len(h)-2:len(h)-2], h[len(h)-1])
	}
	return "", errors.New("publish: production has no earlier version to roll back to")
}

// commitLocked persists the state, then re-signs the manifests.
func (p *Publisher) commitLocked() error {
	b, err := json.MarshalIndent(&p.st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(p.o.statePath(), append(b, '\n')); err != nil {
		return err
	}
	return p.resignLocked()
}

func (p *Publisher) resign() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resignLocked()
}

// resignLocked signs a fresh manifest for each channel with a new Seq.
func (p *Publisher) resignLocked() error {
	// Seq is unix nanoseconds, kept strictly increasing: it survives a lost
	// channels.json, and edges refuse anything older than what they saw.
	seq := uint64(time.Now().UnixNano())
	if seq <= p.st.Seq {
		seq = p.st.Seq + 1
	}
	p.st.Seq = seq
	for _, ch := range []string{manifestsig.Staging, manifestsig.Production} {
		v := p.st.Staging
		if ch == manifestsig.Production {
			v = p.st.Production
		}
		if v == "" {
			delete(p.manifests, ch)
			continue
		}
		m, err := snapshot.ReadManifest(filepath.Join(p.o.snapDir(), v+".manifest.json"))
		if err != nil {
			return fmt.Errorf("publish: %s: %w", v, err)
		}
		env, err := manifestsig.Sign(p.o.Key, &manifestsig.Payload{
			Channel: ch, Version: v, File: m.File, Size: m.Size, XXHash64: m.XXHash64,
			FormatVersion: m.FormatVersion, Created: m.Created, InfoHash: p.infoHash[v],
			PieceLength: p.o.PieceLength,
			Torrent:     p.o.PublicURL + "/v1/torrent/" + v + ".torrent",
			WebSeed:     p.o.PublicURL + "/v1/webseed/",
			Seq:         seq, Issued: time.Now().UTC().Format(time.RFC3339),
		})
		if err != nil {
			return err
		}
		p.manifests[ch] = env
	}
	return nil
}

// prune removes built snapshots beyond the newest Keep, except those a
// channel points at and production's previous version (rollback target).
func (p *Publisher) prune() {
	p.mu.Lock()
	keep := map[string]bool{p.st.Staging: true, p.st.Production: true}
	if h := p.st.History; len(h) >= 2 {
		keep[h[len(h)-2]] = true
	}
	vs := p.st.Versions
	var drop []string
	var rest []string
	for i, v := range vs {
		if i < len(vs)-p.o.Keep && !keep[v] {
			drop = append(drop, v)
			continue
		}
		rest = append(rest, v)
	}
	p.st.Versions = rest
	var ts []*distrib.Torrent
	for _, v := range drop {
		ts = append(ts, p.seeding[v])
		delete(p.seeding, v)
		delete(p.infoHash, v)
	}
	err := p.commitLocked()
	p.mu.Unlock()
	if err != nil {
		p.log("prune_failed", "err", err)
		return
	}
	for i, v := range drop {
		if ts[i] != nil {
			ts[i].Drop()
		}
		for _, f := range []string{p.o.snapPath(v), p.o.torrentPath(v), filepath.Join(p.o.snapDir(), v+".manifest.json")} {
			_ = os.Remove(f)
		}
		p.log("pruned", "version", v)
	}
}

// Status is the builder's state for /admin/status and adtool.
type Status struct {
	Staging    string   `json:"staging"`
	Production string   `json:"production"`
	History    []string `json:"production_history"`
	Versions   []string `json:"versions"`
	Seq        uint64   `json:"seq"`
	PeerAddr   string   `json:"peer_addr"`
	LastError  string   `json:"last_error,omitempty"`
	LastErrAt  string   `json:"last_error_at,omitempty"`
	Uploaded   struct {
		Torrent int64 `json:"torrent"`
		WebSeed int64 `json:"webseed"`
	} `json:"uploaded_bytes"`
}

// Status reports channels and versions.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	s := Status{Staging: p.st.Staging, Production: p.st.Production, History: slices.Clone(p.st.History),
		Versions: slices.Clone(p.st.Versions), Seq: p.st.Seq, LastError: p.lastErr}
	if !p.lastErrAt.IsZero() {
		s.LastErrAt = p.lastErrAt.UTC().Format(time.RFC3339)
	}
	p.mu.Unlock()
	sort.Strings(s.Versions)
	s.PeerAddr = p.cl.Addr()
	s.Uploaded.Torrent = p.cl.Totals().TorrentUp
	s.Uploaded.WebSeed = p.WebSeedBytes()
	return s
}

// Manifest returns the signed manifest of channel, nil when it has none.
func (p *Publisher) Manifest(channel string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.manifests[channel]
}
