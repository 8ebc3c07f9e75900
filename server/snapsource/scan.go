package snapsource

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/adedge/adedge/snapshot"
	"github.com/cespare/xxhash/v2"
)

// fileKey identifies one version of a file: a rewrite or a replacing rename
// changes size or mtime, and only then is a rejected file tried again.
type fileKey struct {
	name        string
	size, mtime int64
}

// peekResult is a file's header identity, read without mapping the file, so
// candidates can be ordered before any of them is fully verified.
type peekResult struct {
	ok      bool
	created int64
	version string
}

type candidate struct {
	key   fileKey
	path  string
	hdr   peekResult
	fresh bool
}

// isCandidate filters names: writers create ".<name>.tmp-*" and rename, so
// dotfiles and temp names are never snapshots yet.
func isCandidate(name string) bool {
	return strings.HasSuffix(name, ".snap") && !strings.HasPrefix(name, ".") && !strings.Contains(name, ".tmp")
}

// newer orders snapshots by header Created, then Version.
func newer(created int64, version string, than *Snap) bool {
	if than == nil {
		return true
	}
	return cmp.Or(cmp.Compare(created, than.created), strings.Compare(version, than.Version)) > 0
}

// peekHeader reads and checks the 128-byte header (magic, header checksum)
// and returns Created and Version. It only orders candidates: snapshot.Open
// still verifies everything before a file is served.
func peekHeader(path string) peekResult {
	f, err := os.Open(path)
	if err != nil {
		return peekResult{}
	}
	defer f.Close()
	var b [snapshot.HeaderSize]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return peekResult{}
	}
	le := binary.LittleEndian
	if string(b[:len(snapshot.HeaderMagic)]) != snapshot.HeaderMagic || xxhash.Sum64(b[:120]) != le.Uint64(b[120:]) {
		return peekResult{}
	}
	vb := b[32 : 32+snapshot.MaxVersionLen+1]
	i := bytes.IndexByte(vb, 0)
	if i < 0 {
		return peekResult{}
	}
	return peekResult{ok: true, created: int64(le.Uint64(b[16:])), version: string(vb[:i])}
}

// scan looks for a snapshot newer than the current one and installs the
// newest that verifies. force (startup, Reload) considers fresh files too and
// reports earlier rejections of newer files again. It returns the files
// rejected and any failure to read the directory.
func (s *Source) scan(force bool) (swapped bool, err error) {
	var after []func()
	s.mu.Lock()
	swapped, rejs, fatal := s.scanLocked(force, &after)
	s.mu.Unlock()
	for _, f := range after {
		f()
	}
	if fatal != nil {
		return swapped, fatal
	}
	if len(rejs) > 0 {
		return swapped, &RejectedError{Errs: rejs}
	}
	return swapped, nil
}

// RejectedError lists the files a scan refused; each error comes from
// snapshot.Open (use errors.Is with the snapshot sentinels).
type RejectedError struct{ Errs []error }

func (e *RejectedError) Error() string {
	return fmt.Sprintf("snapsource: %d file(s) rejected: %v", len(e.Errs), errors.Join(e.Errs...))
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (e *RejectedError) Unwrap() []error { return e.Errs }

func isRejection(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}

func (s *Source) scanLocked(force bool, after *[]func()) (swapped bool, rejs []error, fatal error) {
	if s.closed {
		return false, nil, ErrClosed
	}
	defer s.scans.Add(1)
	now := time.Now()
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		s.noteError(err)
		s.log("snapshot_scan_failed", "dir", s.opts.Dir, "err", err)
		return false, nil, fmt.Errorf("snapsource: %w", err)
	}
	s.noteMu.Lock()
	notified := s.notified
	s.notified = map[string]struct{}{}
	s.noteMu.Unlock()

	cur := s.cur.Load()
	seen := make(map[string]fileKey, len(ents))
	var cands []candidate
	for _, e := range ents {
		name := e.Name()
		if !isCandidate(name) {
			continue
		}
		path := filepath.Join(s.opts.Dir, name)
		fi, err := os.Stat(path) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		k := fileKey{name: name, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		seen[name] = k
		fresh := now.Sub(fi.ModTime()) < settle
		_, renamed := notified[name]
		if fresh && !force && !renamed && s.prev[name] != k {
			continue // may still be written: look again next poll
		}
		h := s.peek(k, path, fresh)
		if rerr, bad := s.rejected[k]; bad {
			if force && (!h.ok || newer(h.created, h.version, cur)) {
				rejs = append(rejs, rerr)
			}
			continue
		}
		cands = append(cands, candidate{key: k, path: path, hdr: h, fresh: fresh})
	}
	s.prev = seen
	for k := range s.rejected {
		if seen[k.name] != k {
			delete(s.rejected, k)
		}
	}
	for k := range s.peeked {
		if seen[k.name] != k {
			delete(s.peeked, k)
		}
	}

	// Files whose header cannot be read go first: opening them yields the
	// precise error to reject them with. Then newest first.
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.hdr.ok != b.hdr.ok {
			if !a.hdr.ok {
				return -1
			}
			return 1
		}
		return -cmp.Or(cmp.Compare(a.hdr.created, b.hdr.created), strings.Compare(a.hdr.version, b.hdr.version))
	})
	if s.pinned != "" {
		if cur != nil && cur.Version == s.pinned {
			return false, rejs, nil
		}
		// Only the pinned version may be installed, whatever its age.
		var pc []candidate
		for _, c := range cands {
			if !c.hdr.ok || c.hdr.version == s.pinned {
				pc = append(pc, c)
			}
		}
		cands, cur = pc, nil
	}
	for _, c := range cands {
		if c.hdr.ok && !newer(c.hdr.created, c.hdr.version, cur) {
			continue
		}
		sn, err := s.open(c.path)
		if err != nil {
			if c.fresh && !force {
				// Probably still being written: not a rejection yet.
				s.log("snapshot_not_ready", "path", c.path, "err", err)
				continue
			}
			s.rejected[c.key] = err
			rejs = append(rejs, err)
			s.statsMu.Lock()
			s.nRejected++
			s.statsMu.Unlock()
			s.noteError(err)
			s.log("snapshot_rejected", "path", c.path, "err", err)
			if f := s.opts.OnReject; f != nil {
				path := c.path
				*after = append(*after, func() { f(path, err) })
			}
			continue
		}
		if !newer(sn.created, sn.Version, cur) || (s.pinned != "" && sn.Version != s.pinned) {
			sn.release(true) // replaced since the peek by an older one
			continue
		}
		s.install(sn, s.cur.Load(), after)
		return true, rejs, nil
	}
	return false, rejs, nil
}

// peek returns k's header, cached while k is unchanged; fresh files are not
// cached since their header may not be written yet.
func (s *Source) peek(k fileKey, path string, fresh bool) peekResult {
	if h, ok := s.peeked[k]; ok {
		return h
	}
	h := peekHeader(path)
	if !fresh {
		s.peeked[k] = h
	}
	return h
}

func (s *Source) open(path string) (*Snap, error) {
	s.openedTotal.Add(1)
	r, err := snapshot.Open(path)
	if err != nil {
		return nil, err
	}
	h := r.Header()
	sn := &Snap{
		R: r, Path: path, Version: h.Version, Created: time.Unix(h.Created, 0).UTC(), LoadedAt: time.Now(),
		created: h.Created, src: s, done: make(chan struct{}),
	}
	sn.refs.Store(1) // the source's reference
	s.liveMu.Lock()
	s.live[sn] = struct{}{}
	s.liveMu.Unlock()
	return sn, nil
}

// install publishes sn, then drops the source's reference to old; old is
// unmapped here if no request holds it, else by the last request's Release.
func (s *Source) install(sn, old *Snap, after *[]func()) {
	s.cur.Store(sn)
	s.statsMu.Lock()
	s.swaps++
	s.statsMu.Unlock()
	oldVersion := ""
	if old != nil {
		oldVersion = old.Version
	}
	s.log("snapshot_swapped", "path", sn.Path, "version", sn.Version, "created", sn.Created, "old", oldVersion)
	if old != nil {
		old.release(true)
	}
	if f := s.opts.OnSwap; f != nil {
		newVersion := sn.Version
		*after = append(*after, func() { f(oldVersion, newVersion) })
	}
}

// Prune deletes *.snap files in Dir beyond the newest keep (by header Created,
// then Version) so rollback targets stay while the disk does not fill. It
// never deletes the snapshot in use, one still held by requests, a file that
// may still be being written (modified within the last 500ms), or a file that
// failed verification or has no readable header (left for an operator to
// inspect); these last do not count towards keep.
func (s *Source) Prune(keep int) (removed []string, err error) {
	if keep < 1 {
		return nil, fmt.Errorf("snapsource: Prune keep must be at least 1, got %d", keep)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("snapsource: %w", err)
	}
	held := map[string]bool{}
	s.liveMu.Lock()
	for sn := range s.live {
		held[sn.Path] = true
	}
	s.liveMu.Unlock()
	now := time.Now()
	var files []candidate
	for _, e := range ents {
		name := e.Name()
		if !isCandidate(name) {
			continue
		}
		path := filepath.Join(s.opts.Dir, name)
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue // symlinks are an operator's doing: leave them
		}
		k := fileKey{name: name, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		if _, bad := s.rejected[k]; bad {
			continue
		}
		fresh := now.Sub(fi.ModTime()) < settle
		h := s.peek(k, path, fresh)
		if !h.ok {
			continue
		}
		files = append(files, candidate{key: k, path: path, hdr: h, fresh: fresh})
	}
	slices.SortFunc(files, func(a, b candidate) int {
		return -cmp.Or(cmp.Compare(a.hdr.created, b.hdr.created), strings.Compare(a.hdr.version, b.hdr.version))
	})
	var errs []error
	for i, f := range files {
		if i < keep || held[f.path] || f.fresh {
			continue
		}
		if err := os.Remove(f.path); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.peeked, f.key)
		removed = append(removed, f.path)
		s.log("snapshot_pruned", "path", f.path, "version", f.hdr.version)
	}
	return removed, errors.Join(errs...)
}
