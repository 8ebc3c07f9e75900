package distrib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// StoreOptions place one torrent's data.
type StoreOptions struct {
	// Path is the data file (created when missing).
	Path string
	// PiecesPath records verified pieces, one byte each, so a restart
	// resumes. Empty keeps the record in memory only.
	PiecesPath string
	// Complete declares every piece verified: seeding without re-hashing.
	Complete bool
	// ReadHook, for fault-injection tests, may alter bytes read from disk
	// before they are sent to a peer.
	ReadHook func(p []byte, off int64)
	// WriteHook, for fault-injection tests, may fail a write (ENOSPC).
	WriteHook func(off int64, n int) error
}

// fileStore is the storage of one single-file torrent: plain pread/pwrite on
// one file. It is used instead of the module's file storage because that one
// writes through mmap (a full disk would then kill the process with SIGBUS
// instead of returning ENOSPC) and infers completion from file names.
type fileStore struct {
	o      StoreOptions
	f      *os.File
	pf     *os.File
	mu     sync.Mutex
	pieces []byte
	closed bool
}

func openStore(o StoreOptions, info *metainfo.Info) (*fileStore, error) {
	flags := os.O_RDWR | os.O_CREATE
	if o.Complete {
		flags = os.O_RDONLY
	}
	f, err := os.OpenFile(o.Path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("distrib: %w", err)
	}
	if o.Complete {
		if st, err := f.Stat(); err != nil || st.Size() != info.Length {
			f.Close()
			return nil, fmt.Errorf("distrib: %s: size does not match the torrent's %d bytes", o.Path, info.Length)
		}
	}
	s := &fileStore{o: o, f: f, pieces: make([]byte, info.NumPieces())}
	if o.Complete {
		for i := range s.pieces {
			s.pieces[i] = 1
		}
	} else if o.PiecesPath != "" {
		pf, err := os.OpenFile(o.PiecesPath, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("distrib: %w", err)
		}
		n, _ := pf.ReadAt(s.pieces, 0)
		for i := range s.pieces[:n] {
			if s.pieces[i] != 1 {
				s.pieces[i] = 0
			}
		}
		s.pf = pf
	}
	return s, nil
}

// CompletedPieces counts pieces recorded verified in a pieces file, for
// progress reports before a torrent is added.
func CompletedPieces(piecesPath string) int {
	b, err := os.ReadFile(piecesPath)
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range b {
		if c == 1 {
			n++
		}
	}
	return n
}

func (s *fileStore) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.f.Close()
	if s.pf != nil {
		s.pf.Close()
	}
}

func (s *fileStore) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	return storage.TorrentImpl{
		PieceWithHash: func(p metainfo.Piece, _ g.Option[[]byte]) storage.PieceImpl {
			return &filePiece{s: s, i: p.Index(), off: p.Offset(), n: p.Length()}
		},
		Close: func() error { return nil }, // Drop closes the files once the torrent is gone
	}, nil
}

func (s *fileStore) mark(i int, done bool) error {
	v := byte(0)
	if done {
		v = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pieces[i] == v {
		return nil
	}
	s.pieces[i] = v
	if s.pf != nil && !s.closed {
		if _, err := s.pf.WriteAt([]byte{v}, int64(i)); err != nil {
			return err
		}
	}
	return nil
}

type filePiece struct {
	s      *fileStore
	i      int
	off, n int64
}

var errPieceRange = errors.New("distrib: access beyond the piece")

func (p *filePiece) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= p.n {
		return 0, errPieceRange
	}
	if int64(len(b)) > p.n-off {
		b = b[:p.n-off]
	}
	n, err := p.s.f.ReadAt(b, p.off+off)
	if h := p.s.o.ReadHook; h != nil {
		h(b[:n], p.off+off)
	}
	return n, err
}

func (p *filePiece) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > p.n {
		return 0, errPieceRange
	}
	if h := p.s.o.WriteHook; h != nil {
		if err := h(p.off+off, len(b)); err != nil {
			return 0, err
		}
	}
	return p.s.f.WriteAt(b, p.off+off)
}

func (p *filePiece) MarkComplete() error    { return p.s.mark(p.i, true) }
func (p *filePiece) MarkNotComplete() error { return p.s.mark(p.i, false) }

func (p *filePiece) Completion() storage.Completion {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return storage.Completion{Ok: true, Complete: p.s.pieces[p.i] == 1}
}

// nopStorage is the client's default storage: every torrent brings its own,
// so nothing (no sqlite database) is created in the working directory.
type nopStorage struct{}

func (nopStorage) OpenTorrent(context.Context, *metainfo.Info, metainfo.Hash) (storage.TorrentImpl, error) {
	return storage.TorrentImpl{}, errors.New("distrib: torrent added without storage")
}
