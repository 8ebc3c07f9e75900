// Package profilesload writes a profiles.jsonl file into a profile store
// that accepts writes (Aerospike). It backs `adtool profiles load`.
//
// The file is checked completely first (same strict rules as the edge's
// file backend, problems reported as path:line) and nothing is written
// when any line is bad. Writes then run with bounded concurrency; lines for
// the same device always go to the same worker, in file order, so when a
// device appears twice its last line wins deterministically.
package profilesload

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adedge/adedge/server/profiles"
	"github.com/cespare/xxhash/v2"
)

// Options tune LoadInto; zero fields take the defaults.
type Options struct {
	// Concurrency is the number of writes in flight (default 16).
	Concurrency int
	// WriteTimeout bounds each write, retries included (default 2s).
	WriteTimeout time.Duration
	// MaxFailures stops the load after this many failed writes, so a
	// dead cluster doesn't cost one timeout per line (default 100; <0
	// means never stop).
	MaxFailures int
	// ProgressEvery is the interval between progress lines (default 1s).
	ProgressEvery time.Duration
}

func (o *Options) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 2 * time.Second
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = 100
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
}

// Load writes the profiles file from into the store described by to (an
// aerospike:// spec, see profiles.Open), printing progress lines to
// progress (nil for none). It returns how many profiles were written and
// how many writes failed; err is non-nil if the file was refused, the
// store could not be opened, the context ended, or any write failed.
func Load(ctx context.Context, from, to string, progress io.Writer) (written, failed int, err error) {
	return load(ctx, from, to, progress, Options{})
}

// load is Load with options (the tests give a loaded machine's real
// server a longer write timeout).
func load(ctx context.Context, from, to string, progress io.Writer, opts Options) (written, failed int, err error) {
	st, err := profiles.Open(to)
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	p, ok := st.(profiles.Putter)
	if !ok {
		return 0, 0, fmt.Errorf("profilesload: store %s does not accept writes (want an aerospike:// spec)", st.Name())
	}
	return LoadInto(ctx, from, p, progress, opts)
}

type job struct {
	line   int
	device string
	p      profiles.Profile
}

// LoadInto is Load with an already open store and explicit options.
func LoadInto(ctx context.Context, from string, dst profiles.Putter, progress io.Writer, opts Options) (written, failed int, err error) {
	opts.defaults()
	if progress == nil {
		progress = io.Discard
	}
	f, err := os.Open(from)
	if err != nil {
		return 0, 0, fmt.Errorf("profilesload: %w", err)
	}
	defer f.Close()

	// Pass 1: refuse a bad file before writing anything.
	total := 0
	if err := profiles.ReadJSONL(f, from, func(int, *profiles.Record) error { total++; return nil }); err != nil {
		return 0, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("profilesload: rewind %s: %w", from, err)
	}
	fmt.Fprintf(progress, "profilesload: %s: %d profiles, writing with %d workers\n", from, total, opts.Concurrency)

	// Pass 2: write.
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		nWritten, nFailed atomic.Int64
		firstMu           sync.Mutex
		firstErr          error
		gaveUp            atomic.Bool // stopped because of MaxFailures
	)
	queues := make([]chan *job, opts.Concurrency)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan *job, 64)
		wg.Add(1)
		go func(q <-chan *job) {
			defer wg.Done()
			for j := range q {
				wctx, wcancel := context.WithTimeout(ctx, opts.WriteTimeout)
				err := dst.PutProfile(wctx, j.device, &j.p)
				wcancel()
				if err == nil {
					nWritten.Add(1)
					continue
				}
				if ctx.Err() != nil {
					continue // cancelled: not the store's fault, not counted
				}
				n := nFailed.Add(1)
				firstMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s:%d: device %q: %w", from, j.line, j.device, err)
				}
				firstMu.Unlock()
				if opts.MaxFailures > 0 && n >= int64(opts.MaxFailures) {
					gaveUp.Store(true)
					cancel()
				}
			}
		}(queues[i])
	}

	start := time.Now()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				w := nWritten.Load()
				fmt.Fprintf(progress, "profilesload: %d/%d written, %d failed (%.0f/s)\n",
					w, total, nFailed.Load(), float64(w)/time.Since(start).Seconds())
			}
		}
	}()

	readErr := profiles.ReadJSONL(f, from, func(line int, rec *profiles.Record) error {
		j := &job{line: line, device: rec.Device}
		j.p.Segments = append([]string(nil), rec.Segments...)
		j.p.InstalledApps = make([]uint64, len(rec.InstalledApps))
		for i, a := range rec.InstalledApps {
			j.p.InstalledApps[i] = profiles.AppHash(a)
		}
		slices.Sort(j.p.InstalledApps)
		j.p.InstalledApps = slices.Compact(j.p.InstalledApps)
		q := queues[xxhash.Sum64String(rec.Device)%uint64(len(queues))]
		select {
		case q <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	close(stopProgress)
	<-progressDone

	written, failed = int(nWritten.Load()), int(nFailed.Load())
	fmt.Fprintf(progress, "profilesload: done: %d written, %d failed, %d not attempted, in %s\n",
		written, failed, total-written-failed, time.Since(start).Round(time.Millisecond))
	switch {
	case gaveUp.Load():
		return written, failed, fmt.Errorf("profilesload: stopped after %d failed writes; first: %w", failed, firstErr)
	case readErr != nil:
		return written, failed, fmt.Errorf("profilesload: %w", readErr)
	case parent.Err() != nil: // ended after the last line was queued
		return written, failed, fmt.Errorf("profilesload: %w", parent.Err())
	case failed > 0:
		return written, failed, fmt.Errorf("profilesload: %d of %d writes failed; first: %w", failed, total, firstErr)
	}
	return written, failed, nil
}
