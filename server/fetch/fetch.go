// Package fetch is the edge's side of snapshot distribution: it polls its
// channel's signed manifest, downloads the snapshot it names over BitTorrent
// (the web seed takes over when the swarm stalls), checks the whole-file
// xxhash64 against the manifest, renames the file into the snapshot
// directory where server/snapsource verifies and swaps it in, keeps seeding
// it to other edges, and prunes old snapshots.
//
// It runs on the control plane only. The request path sees snapsource, never
// this package or the torrent code behind it.
package fetch

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"

	"github.com/adedge/adedge/internal/atomicfile"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/snapshot/distrib"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

// Snapshots is what the fetcher needs of the edge's snapshot source.
type Snapshots interface {
	// Serving is the version in use ("" for none).
	Serving() string
	// Pin makes the source serve version once a good file of it is in the
	// directory, and rescans now.
	Pin(version string) (swapped bool, err error)
	// Prune deletes snapshot files beyond the newest keep, never the one in
	// use, and returns their paths.
	Prune(keep int) ([]string, error)
}

// Options configure a Fetcher.
type Options struct {
	ManifestURL string // e.g. http://builder:7070/v1/manifest; ?channel= is added
	Channel     string
	PubKey      ed25519.PublicKey
	SnapshotDir string
	Snapshots   Snapshots
	// Keep is how many snapshots stay in SnapshotDir (default 3).
	Keep int
	// Poll is the mean manifest poll interval (default 5s), jittered by
	// ±25% so a fleet does not poll in step.
	Poll time.Duration
	// StallTimeout is how long a download may make no progress over
	// BitTorrent before the web seed is added (default 10s).
	StallTimeout time.Duration
	// BindIP, PeerPort and UploadRate (bytes/s, 0 = unlimited) configure
	// the BitTorrent client.
	BindIP     string
	PeerPort   int
	UploadRate int64
	Log        func(event string, kv ...any)
	// HTTP fetches manifests and .torrent files (default: 10s timeout).
	HTTP *http.Client
	// WriteHook, for fault-injection tests, may fail downloads' writes.
	WriteHook func(off int64, n int) error
}

// State names what the fetcher is doing.
type State string

// States reported in Status and /health.
const (
	Idle        State = "idle"        // serving the channel's version, nothing to fetch
	Waiting     State = "waiting"     // no manifest yet (builder unreachable, or refused)
	Downloading State = "downloading" // fetching the channel's version
	Verifying   State = "verifying"
	Failed      State = "failed" // the last attempt failed; retried on later polls
)

// Status is the fetcher's state for /health, metrics and logs.
type Status struct {
	State          State
	Channel        string
	Target         string // the channel's version per the last good manifest
	Serving        string
	BytesDone      int64
	BytesTotal     int64
	Peers          int
	WebSeed        bool // the web seed was added to the current download
	LastError      string
	LastErrorAt    time.Time
	LastManifestAt time.Time
	VerifySeconds  float64 // xxhash64 of the last download
	SwapSeconds    float64 // rename + snapsource verify + swap of the last download
}

// Fetcher is a running distribution client on one edge.
type Fetcher struct {
	o    Options
	cl   *distrib.Client
	dir  string // SnapshotDir/.dist: torrents and manifests of local snapshots
	inc  string // SnapshotDir/.dist/incoming: downloads in progress
	kick chan struct{}

	mu      sync.Mutex
	st      Status
	lastSeq uint64
	seeding map[string]*distrib.Torrent // local complete snapshots by version
	dl      *download
	badSeq  uint64 // manifest seq whose file failed verification: not retried

	refused  atomic.Uint64 // manifests refused (signature, format, replay)
	failures atomic.Uint64 // downloads failed (verify, write, torrent)
	writeErr atomic.Uint64
	done     atomic.Uint64 // downloads installed
}

type download struct {
	p        *manifestsig.Payload
	t        *distrib.Torrent
	cancel   context.CancelFunc
	finished chan struct{}
}

// New starts the BitTorrent client and seeds the local snapshots that came
// through it before (their .torrent files are kept in SnapshotDir/.dist).
func New(o Options) (*Fetcher, error) {
	if !manifestsig.ValidChannel(o.Channel) {
		return nil, fmt.Errorf("fetch: channel %q: want staging or production", o.Channel)
	}
	if len(o.PubKey) != ed25519.PublicKeySize {
		return nil, errors.New("fetch: a public key is required")
	}
	if o.Snapshots == nil || o.SnapshotDir == "" || o.ManifestURL == "" {
		return nil, errors.New("fetch: ManifestURL, SnapshotDir and Snapshots are required")
	}
	if o.Keep <= 0 {
		o.Keep = 3
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 10 * time.Second
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	f := &Fetcher{o: o, dir: filepath.Join(o.SnapshotDir, ".dist"), kick: make(chan struct{}, 1), seeding: map[string]*distrib.Torrent{}}
	f.inc = filepath.Join(f.dir, "incoming")
	if err := os.MkdirAll(f.inc, 0o755); err != nil {
		return nil, err
	}
	var lim *rate.Limiter
	if o.UploadRate > 0 {
		lim = rate.NewLimiter(rate.Limit(o.UploadRate), 256<<10)
	}
	cl, err := distrib.NewClient(distrib.Options{BindIP: o.BindIP, Port: o.PeerPort, Upload: lim, Seed: true})
	if err != nil {
		return nil, err
	}
	f.cl = cl
	f.st = Status{State: Waiting, Channel: o.Channel}
	f.seedLocal()
	return f, nil
}

// PinnedVersion is the version the last manifest named, saved so a
// restarted edge serves it at once (snapsource.Options.Pin) rather than the
// newest file; "" when unknown.
func PinnedVersion(snapshotDir string) string {
	b, err := os.ReadFile(filepath.Join(snapshotDir, ".dist", "pinned"))
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(b))
	if !snapshot.ValidVersion(v) {
		return ""
	}
	return v
}

func (f *Fetcher) log(event string, kv ...any) {
	if f.o.Log != nil {
		f.o.Log(event, kv...)
	}
}

func (f *Fetcher) fail(what string, err error) {
	f.mu.Lock()
	f.st.State = Failed
	f.st.LastError = what + ": " + err.Error()
	f.st.LastErrorAt = time.Now()
	f.mu.Unlock()
	f.log("distribution_error", "what", what, "err", err)
}

// Close stops downloads and seeding; partial downloads stay for a resume.
func (f *Fetcher) Close() error {
	f.mu.Lock()
	dl := f.dl
	f.dl = nil
	f.mu.Unlock()
	if dl != nil {
		dl.cancel()
		<-dl.finished
	}
	return f.cl.Close()
}

// PeerAddr is this edge's BitTorrent address.
func (f *Fetcher) PeerAddr() string { return f.cl.Addr() }

// Totals are the edge's distribution byte counts.
func (f *Fetcher) Totals() distrib.Totals { return f.cl.Totals() }

// BadPeerIPs lists peers banned for corrupt pieces.
func (f *Fetcher) BadPeerIPs() []string { return f.cl.BadPeerIPs() }

// Status reports progress.
func (f *Fetcher) Status() Status {
	f.mu.Lock()
	st := f.st
	var t *distrib.Torrent // set by runDownload under f.mu
	if f.dl != nil {
		t = f.dl.t
	}
	f.mu.Unlock()
	st.Serving = f.o.Snapshots.Serving()
	if st.State == Verifying && st.Target != "" && st.Serving == st.Target {
		// The verified file is in the snapshot directory and the source
		// (woken by inotify) already serves it; what is left of install is
		// bookkeeping. Saying "verifying" while serving the version
		// contradicts /health's own snapshot field.
		st.State = Idle
	}
	if t != nil {
		st.BytesDone, st.BytesTotal, st.Peers = t.BytesCompleted(), t.Length(), t.Peers()
	}
	return st
}

// Kick makes Run poll the manifest now instead of at the next interval.
func (f *Fetcher) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Run polls the manifest until ctx ends.
func (f *Fetcher) Run(ctx context.Context) {
	for {
		f.pollOnce(ctx)
		d := time.Duration(float64(f.o.Poll) * (0.75 + 0.5*rand.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		case <-f.kick:
		}
	}
}

func (f *Fetcher) manifestURL() string {
	sep := "?"
	if strings.Contains(f.o.ManifestURL, "?") {
		sep = "&"
	}
	return f.o.ManifestURL + sep + "channel=" + url.QueryEscape(f.o.Channel)
}

func (f *Fetcher) get(ctx context.Context, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.o.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, max)
	}
	return b, nil
}

// resolve makes ref absolute against the manifest URL.
func (f *Fetcher) resolve(ref string) (string, error) {
	base, err := url.Parse(f.o.ManifestURL)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	u := base.ResolveReference(r)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("URL %q is not http(s)", ref)
	}
	return u.String(), nil
}

func (f *Fetcher) pollOnce(ctx context.Context) {
	env, err := f.get(ctx, f.manifestURL(), manifestsig.MaxBytes)
	if err != nil {
		if ctx.Err() == nil {
			f.fail("manifest", err)
		}
		return
	}
	p, err := manifestsig.Verify(f.o.PubKey, env, f.o.Channel)
	if err != nil {
		f.refused.Add(1)
		f.fail("manifest refused", err)
		return
	}
	f.mu.Lock()
	if p.Seq < f.lastSeq {
		f.mu.Unlock()
		f.refused.Add(1)
		f.fail("manifest refused", fmt.Errorf("seq %d is older than %d already seen (replayed manifest?)", p.Seq, f.lastSeq))
		return
	}
	f.lastSeq = p.Seq
	f.st.LastManifestAt = time.Now()
	changed := f.st.Target != p.Version
	f.st.Target = p.Version
	dl := f.dl
	bad := f.badSeq == p.Seq
	f.mu.Unlock()
	if changed {
		f.log("manifest", "channel", p.Channel, "version", p.Version, "size", p.Size, "seq", p.Seq)
	}
	if bad {
		return // this manifest's file already failed verification; wait for a new one
	}
	// Already here: seeded (verified when it arrived), or shipped some
	// other way and matching the manifest.
	final := filepath.Join(f.o.SnapshotDir, p.File)
	f.mu.Lock()
	_, local := f.seeding[p.Version]
	f.mu.Unlock()
	if !local {
		local, _ = fileMatches(final, p)
	}
	if local {
		if dl != nil {
			f.stopDownload(dl)
		}
		f.install(ctx, p, final, env, nil)
		return
	}
	if dl != nil {
		if dl.p.Version == p.Version {
			return // in progress
		}
		f.log("download_superseded", "version", dl.p.Version, "by", p.Version)
		f.stopDownload(dl)
		f.removeIncoming(dl.p.Version)
	}
	f.startDownload(ctx, p, env)
}

func (f *Fetcher) stopDownload(dl *download) {
	dl.cancel()
	<-dl.finished
	f.mu.Lock()
	if f.dl == dl {
		f.dl = nil
	}
	f.mu.Unlock()
}

func (f *Fetcher) removeIncoming(v string) {
	for _, s := range []string{".snap", ".pieces", ".torrent", ".manifest"} {
		_ = os.Remove(filepath.Join(f.inc, v+s))
	}
}

// fileMatches reports whether path is a complete file matching p's size and
// xxhash64.
func fileMatches(path string, p *manifestsig.Payload) (bool, error) {
	st, err := os.Stat(path)
	if err != nil || st.Size() != p.Size {
		return false, err
	}
	h, err := snapshot.HashFile(path)
	if err != nil {
		return false, err
	}
	return snapshot.Hex16(h) == p.XXHash64, nil
}

func (f *Fetcher) startDownload(parent context.Context, p *manifestsig.Payload, env []byte) {
	ctx, cancel := context.WithCancel(parent)
	dl := &download{p: p, cancel: cancel, finished: make(chan struct{})}
	f.mu.Lock()
	f.dl = dl
	f.st.State, f.st.WebSeed = Downloading, false
	f.mu.Unlock()
	go func() {
		defer close(dl.finished)
		defer cancel()
		err := f.runDownload(ctx, dl, env)
		f.mu.Lock()
		if f.dl == dl {
			f.dl = nil
		}
		f.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			// Retried at the next poll, not at once: a builder answering
			// errors quickly must not turn this into a tight loop.
			f.failures.Add(1)
			f.fail("download "+p.Version, err)
		}
	}()
}

func (f *Fetcher) runDownload(ctx context.Context, dl *download, env []byte) error {
	p := dl.p
	torrentURL, err := f.resolve(p.Torrent)
	if err != nil {
		return err
	}
	webseed, err := f.resolve(p.WebSeed)
	if err != nil {
		return err
	}
	tb, err := f.get(ctx, torrentURL, distrib.MaxTorrentBytes)
	if err != nil {
		return err
	}
	mi, err := distrib.ParseTorrent(tb, p.InfoHash, p.File, p.Size)
	if err != nil {
		return err
	}
	part := filepath.Join(f.inc, p.Version+".snap")
	pieces := filepath.Join(f.inc, p.Version+".pieces")
	if err := writeAtomic(filepath.Join(f.inc, p.Version+".torrent"), tb); err != nil {
		return err
	}
	resumed := distrib.CompletedPieces(pieces)
	t, err := f.cl.Download(mi, distrib.StoreOptions{Path: part, PiecesPath: pieces, WriteHook: f.o.WriteHook})
	if err != nil {
		return err
	}
	keep := false // a finished download goes on seeding as it is
	defer func() {
		if !keep {
			t.Drop()
		}
	}()
	f.mu.Lock()
	dl.t = t
	f.mu.Unlock()
	writeErrs := make(chan error, 1)
	t.OnWriteError(func(err error) {
		select {
		case writeErrs <- err:
		default:
		}
	})
	start := time.Now()
	f.log("download_started", "version", p.Version, "bytes", p.Size, "pieces", t.NumPieces(), "resumed_pieces", resumed)
	lastDone, lastProgress := t.BytesCompleted(), time.Now()
	lastLog := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	webseedAdded := false
	// Ask the tracker for the swarm every few seconds while downloading (the
	// library itself waits a minute between announces), so edges that joined
	// together find each other at once.
	var announcing atomic.Bool
	lastAnnounce := time.Now()
	for {
		select {
		case <-ctx.Done():
			f.log("download_paused", "version", p.Version, "done", t.BytesCompleted(), "of", p.Size)
			return ctx.Err()
		case err := <-writeErrs:
			f.writeErr.Add(1)
			msg := err
			if errors.Is(err, syscall.ENOSPC) {
				msg = fmt.Errorf("disk full in %s: %w", f.inc, err)
			}
			f.fail("download "+p.Version, msg)
			// The old snapshot keeps serving. Retry after a pause: space may
			// have been freed (pruning, an operator).
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
			}
			f.mu.Lock()
			f.st.State = Downloading
			f.mu.Unlock()
			t.ResumeDownload()
		case <-t.Done():
			took := time.Since(start)
			tot := f.cl.Totals()
			f.log("download_complete", "version", p.Version, "took", took.Round(time.Millisecond), "torrent_down", tot.TorrentDown, "webseed_down", tot.WebSeedDown)
			// The torrent stays up: its file handle follows the rename, so
			// peers fetching from this edge are not cut off.
			keep = true
			err := f.finish(ctx, p, part, env, t)
			if err != nil {
				t.Drop()
			}
			return err
		case <-tick.C:
			if mi.Announce != "" && time.Since(lastAnnounce) > 3*time.Second && announcing.CompareAndSwap(false, true) {
				lastAnnounce = time.Now()
				go func() {
					defer announcing.Store(false)
					_, _ = t.Announce(ctx, mi.Announce)
				}()
			}
			done := t.BytesCompleted()
			if done != lastDone {
				lastDone, lastProgress = done, time.Now()
			} else if !webseedAdded && time.Since(lastProgress) > f.o.StallTimeout {
				webseedAdded = true
				t.AddWebSeed(webseed)
				f.mu.Lock()
				f.st.WebSeed = true
				f.mu.Unlock()
				f.log("webseed_fallback", "version", p.Version, "stalled_for", time.Since(lastProgress).Round(time.Second), "done", done, "of", p.Size, "url", webseed)
			}
			if time.Since(lastLog) > 5*time.Second {
				lastLog = time.Now()
				f.log("download_progress", "version", p.Version, "done", done, "of", p.Size, "peers", t.Peers())
			}
		}
	}
}

// finish verifies the downloaded file against the manifest and installs it.
func (f *Fetcher) finish(ctx context.Context, p *manifestsig.Payload, part string, env []byte, t *distrib.Torrent) error {
	f.mu.Lock()
	f.st.State = Verifying
	f.mu.Unlock()
	vstart := time.Now()
	h, err := snapshot.HashFile(part)
	if err != nil {
		return err
	}
	verify := time.Since(vstart)
	if got := snapshot.Hex16(h); got != p.XXHash64 {
		// Every piece passed its SHA-1, yet the file is not what the signed
		// manifest names: the builder published an inconsistent torrent.
		// Discard it and wait for a new manifest.
		f.removeIncoming(p.Version)
		f.mu.Lock()
		f.badSeq = p.Seq
		f.mu.Unlock()
		return fmt.Errorf("xxhash64 %s, the manifest says %s: file discarded, %s keeps serving", got, p.XXHash64, f.o.Snapshots.Serving())
	}
	fh, err := os.Open(part)
	if err == nil {
		err = fh.Sync()
		fh.Close()
	}
	if err != nil {
		return err
	}
	final := filepath.Join(f.o.SnapshotDir, p.File)
	renamed := time.Now()
	if err := os.Rename(part, final); err != nil {
		return err
	}
	syncDir(f.o.SnapshotDir)
	_ = os.Remove(filepath.Join(f.inc, p.Version+".pieces"))
	if err := os.Rename(filepath.Join(f.inc, p.Version+".torrent"), filepath.Join(f.dir, p.Version+".torrent")); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(f.dir, p.Version+".manifest"), env); err != nil {
		return err
	}
	f.mu.Lock()
	f.st.VerifySeconds = verify.Seconds()
	f.seeding[p.Version] = t
	f.mu.Unlock()
	f.install(ctx, p, final, env, nil)
	if f.o.Snapshots.Serving() == p.Version {
		// On disk to serving: snapsource's open, section checksums and swap
		// (it may have been woken by inotify before Pin asked).
		f.done.Add(1)
		f.mu.Lock()
		f.st.SwapSeconds = time.Since(renamed).Seconds()
		f.mu.Unlock()
	}
	return nil
}

// install records p's local file, seeds it, pins it and prunes.
func (f *Fetcher) install(ctx context.Context, p *manifestsig.Payload, final string, env []byte, mi *metainfo.MetaInfo) {
	f.mu.Lock()
	_, seeding := f.seeding[p.Version]
	f.mu.Unlock()
	if !seeding {
		if mi == nil {
			tb, err := os.ReadFile(filepath.Join(f.dir, p.Version+".torrent"))
			if err == nil {
				mi, err = distrib.ParseTorrent(tb, p.InfoHash, p.File, p.Size)
			}
			if err != nil {
				u, rerr := f.resolve(p.Torrent)
				if rerr == nil {
					tb, err = f.get(ctx, u, distrib.MaxTorrentBytes)
				}
				if err == nil {
					mi, err = distrib.ParseTorrent(tb, p.InfoHash, p.File, p.Size)
				}
			}
			if err != nil {
				f.log("seed_skipped", "version", p.Version, "err", err)
			}
		}
		if mi != nil {
			if tb, err := distrib.EncodeTorrent(mi); err == nil {
				_ = writeAtomic(filepath.Join(f.dir, p.Version+".manifest"), env)
				_ = writeAtomic(filepath.Join(f.dir, p.Version+".torrent"), tb)
			}
			if t, err := f.cl.Seed(mi, final); err != nil {
				f.log("seed_failed", "version", p.Version, "err", err)
			} else {
				f.mu.Lock()
				f.seeding[p.Version] = t
				f.mu.Unlock()
			}
		}
	}
	if f.o.Snapshots.Serving() != p.Version {
		_ = writeAtomic(filepath.Join(f.dir, "pinned"), []byte(p.Version+"\n"))
		sstart := time.Now()
		swapped, err := f.o.Snapshots.Pin(p.Version)
		took := time.Since(sstart)
		if err == nil && !swapped && f.o.Snapshots.Serving() == p.Version {
			swapped = true // the source, woken by inotify, swapped it in between
		}
		if err != nil || !swapped {
			if err == nil {
				err = errors.New("the snapshot source did not install it")
			}
			f.failures.Add(1)
			f.fail("swap "+p.Version, err)
			return
		}
		f.log("snapshot_installed", "version", p.Version, "swap", took.Round(time.Microsecond))
	}
	f.mu.Lock()
	f.st.State, f.st.LastError, f.st.WebSeed = Idle, "", false
	f.mu.Unlock()
	f.prune()
}

func (f *Fetcher) prune() {
	removed, err := f.o.Snapshots.Prune(f.o.Keep)
	if err != nil {
		f.log("prune_failed", "err", err)
	}
	for _, path := range removed {
		v := strings.TrimSuffix(filepath.Base(path), ".snap")
		f.mu.Lock()
		t := f.seeding[v]
		delete(f.seeding, v)
		f.mu.Unlock()
		if t != nil {
			t.Drop()
		}
		_ = os.Remove(filepath.Join(f.dir, v+".torrent"))
		_ = os.Remove(filepath.Join(f.dir, v+".manifest"))
		f.log("snapshot_pruned", "version", v)
	}
}

// seedLocal seeds the local snapshots that came through the fetcher
// before: each has its .torrent and signed manifest in .dist, and seeds only
// if the manifest still verifies and the file still hashes to it (peers
// would ban an edge serving bad pieces).
func (f *Fetcher) seedLocal() {
	ents, _ := os.ReadDir(f.dir)
	for _, e := range ents {
		v, ok := strings.CutSuffix(e.Name(), ".torrent")
		if !ok || !snapshot.ValidVersion(v) {
			continue
		}
		final := filepath.Join(f.o.SnapshotDir, v+".snap")
		err := func() error {
			env, err := os.ReadFile(filepath.Join(f.dir, v+".manifest"))
			if err != nil {
				return err
			}
			p, err := manifestsig.Verify(f.o.PubKey, env, "")
			if err != nil {
				return err
			}
			if p.Version != v {
				return fmt.Errorf("manifest names %s", p.Version)
			}
			if ok, err := fileMatches(final, p); !ok {
				return fmt.Errorf("%s does not match its manifest (%v)", final, err)
			}
			tb, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
			if err != nil {
				return err
			}
			mi, err := distrib.ParseTorrent(tb, p.InfoHash, p.File, p.Size)
			if err != nil {
				return err
			}
			t, err := f.cl.Seed(mi, final)
			if err != nil {
				return err
			}
			f.seeding[v] = t
			return nil
		}()
		if err != nil {
			f.log("seed_skipped", "version", v, "err", err)
			_ = os.Remove(filepath.Join(f.dir, v+".torrent"))
			_ = os.Remove(filepath.Join(f.dir, v+".manifest"))
			continue
		}
		f.log("seeding", "version", v)
	}
}

func writeAtomic(path string, b []byte) error {
	return atomicfile.WriteBytes(path, b)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// FromSource adapts the edge's snapshot source.
func FromSource(s *snapsource.Source) Snapshots { return source{s} }

type source struct{ s *snapsource.Source }

func (a source) Serving() string                  { return a.s.Stats().Version }
func (a source) Pin(v string) (bool, error)       { return a.s.Pin(v) }
func (a source) Prune(keep int) ([]string, error) { return a.s.Prune(keep) }

// currentTorrent is the download in progress, for tests.
func (f *Fetcher) currentTorrent() *distrib.Torrent {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dl == nil {
		return nil
	}
	return f.dl.t
}
