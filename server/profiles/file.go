package profiles

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// capShardCount spreads cap counters over independently locked shards so
// concurrent impressions for different devices rarely contend.
const capShardCount = 64

var errClosed = errors.New("profiles: store is closed")

// FileStore serves profiles loaded from a profiles.jsonl file into memory
// and counts frequency caps in memory (lost on restart). It suits single
// edges, development and tests; fleets share caps through Aerospike.
type FileStore struct {
	counters
	name string
	data atomic.Pointer[fileData] // nil after Close
}

type fileData struct {
	profiles map[string]fileProfile // read-only after load: no lock on Get
	shards   [capShardCount]capShard
}

type fileProfile struct {
	segments []string
	apps     []uint64
}

type capShard struct {
	mu   sync.Mutex
	caps map[string][]Cap // device -> one entry per campaign (latest window)
	_    [40]byte         // keep neighbouring shard locks off one cache line
}

// OpenFile loads path (profiles.jsonl, see Record) into a FileStore. Any
// malformed line, unknown field or duplicate device refuses the whole file
// with a *ParseError listing path:line problems.
func OpenFile(path string) (*FileStore, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("profiles: open profiles file: %w", err)
	}
	defer f.Close()

	d := &fileData{profiles: make(map[string]fileProfile)}
	for i := range d.shards {
		d.shards[i].caps = make(map[string][]Cap)
	}
	intern := make(map[string]string) // segment names repeat across millions of devices
	firstLine := make(map[string]int)
	var dups problems
	dups.name = path

	err = ReadJSONL(f, path, func(line int, rec *Record) error {
		if first, ok := firstLine[rec.Device]; ok {
			dups.add(line, "duplicate device %q (first on line %d)", rec.Device, first)
			return nil
		}
		firstLine[rec.Device] = line
		var fp fileProfile
		if len(rec.Segments) > 0 {
			fp.segments = make([]string, len(rec.Segments))
			for i, s := range rec.Segments {
				v, ok := intern[s]
				if !ok {
					v = s
					intern[s] = s
				}
				fp.segments[i] = v
			}
		}
		if len(rec.InstalledApps) > 0 {
			fp.apps = make([]uint64, len(rec.InstalledApps))
			for i, a := range rec.InstalledApps {
				fp.apps[i] = AppHash(a)
			}
			fp.apps = sortApps(fp.apps)
		}
		d.profiles[rec.Device] = fp
		return nil
	})
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) && dups.err.Total > 0 {
			mergeProblems(pe, &dups.err)
		}
		return nil, err
	}
	if err := dups.result(); err != nil {
		return nil, err
	}
	s := &FileStore{name: "file:" + path}
	s.data.Store(d)
	return s, nil
}

// mergeProblems appends b's problems to a, keeping the cap.
func mergeProblems(a, b *ParseError) {
	a.Total += b.Total
	for _, p := range b.Problems {
		if len(a.Problems) >= MaxReportedProblems {
			break
		}
		a.Problems = append(a.Problems, p)
	}
}

// Len returns the number of profiles loaded.
func (s *FileStore) Len() int {
	d := s.data.Load()
	if d == nil {
		return 0
	}
	return len(d.profiles)
}

func (d *fileData) shard(device string) *capShard {
	return &d.shards[xxhash.Sum64String(device)&(capShardCount-1)]
}

// Get implements Store. A device with cap counters but no profile line is
// a hit with only Caps filled, so caps apply to every device.
func (s *FileStore) Get(ctx context.Context, device string, dst *Profile) error {
	dst.Reset()
	if err := ctxErr(ctx, "get"); err != nil {
		return s.countGet(err)
	}
	d := s.data.Load()
	if d == nil {
		return s.countGet(errClosed)
	}
	fp, ok := d.profiles[device]
	if ok {
		dst.Segments = append(dst.Segments, fp.segments...)
		dst.InstalledApps = append(dst.InstalledApps, fp.apps...)
	}
	sh := d.shard(device)
	sh.mu.Lock()
	caps := sh.caps[device]
	dst.Caps = append(dst.Caps, caps...)
	sh.mu.Unlock()
	if !ok && len(caps) == 0 {
		return s.countGet(ErrNotFound)
	}
	return s.countGet(nil)
}

// IncrementCap implements Store. Each campaign keeps only its latest
// window; an increment for an older window (a late event) is dropped.
func (s *FileStore) IncrementCap(ctx context.Context, device, campaignID string, periodSeconds uint32, now int64) error {
	if err := checkCapArgs(device, campaignID, periodSeconds, now); err != nil {
		return s.countCap(err)
	}
	if err := ctxErr(ctx, "increment cap"); err != nil {
		return s.countCap(err)
	}
	d := s.data.Load()
	if d == nil {
		return s.countCap(errClosed)
	}
	ws := WindowStart(now, periodSeconds)
	sh := d.shard(device)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	caps := sh.caps[device]
	for i := range caps {
		c := &caps[i]
		if c.CampaignID != campaignID {
			continue
		}
		switch {
		case ws > c.WindowStart:
			c.WindowStart, c.Count = ws, 1
		case ws == c.WindowStart && c.Count < math.MaxUint32:
			c.Count++
		}
		return s.countCap(nil)
	}
	// Callers may pass strings aliasing request buffers (fasthttp): copy
	// what the map keeps beyond this call. The key is cloned even when it
	// exists because assigning to a string-keyed map replaces the key.
	sh.caps[strings.Clone(device)] = append(caps, Cap{CampaignID: strings.Clone(campaignID), Count: 1, WindowStart: ws})
	return s.countCap(nil)
}

// Name implements Store.
func (s *FileStore) Name() string { return s.name }

// Close implements Store; it drops the loaded profiles and caps.
func (s *FileStore) Close() error {
	s.data.Store(nil)
	return nil
}

// InMemory implements profiles.InMemory: Get never blocks.
func (s *FileStore) InMemory() {}
