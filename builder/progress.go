package builder

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Progress reports build phases and record rates. On a terminal it redraws
// one status line; otherwise it writes one plain log line per phase, so CI
// logs and journald stay readable. A nil *Progress discards everything.
type Progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	phase   string
	start   time.Time
	records int64
	last    time.Time
}

// NewProgress writes to w, redrawing in place when w is a terminal.
func NewProgress(w io.Writer) *Progress {
	p := &Progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// Phase starts a named phase.
func (p *Progress) Phase(name string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.start, p.records, p.last = name, time.Now(), 0, time.Time{}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s ...", name)
	}
}

// Records adds n processed records to the current phase; it matches the
// inventory loader's progress callback (the phase argument is shown on a
// terminal).
func (p *Progress) Records(n int) { p.RecordsIn("", n) }

// RecordsIn adds n records processed within a named sub-phase.
func (p *Progress) RecordsIn(sub string, n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records += int64(n)
	if p.tty && time.Since(p.last) > 100*time.Millisecond {
		p.last = time.Now()
		el := time.Since(p.start).Seconds()
		label := p.phase
		if sub != "" {
			label += " (" + sub + ")"
		}
		fmt.Fprintf(p.w, "\r\033[K%s: %d records, %.0f records/s", label, p.records, float64(p.records)/max(el, 1e-9))
	}
}

// Done ends the current phase with its totals.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start)
	line := fmt.Sprintf("%s: done in %s", p.phase, el.Round(time.Millisecond))
	if p.records > 0 {
		line += fmt.Sprintf(", %d records, %.0f records/s", p.records, float64(p.records)/max(el.Seconds(), 1e-9))
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	} else {
		fmt.Fprintf(p.w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
	}
}
