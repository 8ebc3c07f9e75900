// Package exptool is adtool's experiment-set commands: bucket (where
// devices fall in every layer, through the edge's own bucketer) and
// experiments diff (how much of each test's users a new set would move).
package exptool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/snapshot"
)

// maxSetFile bounds a set file read whole (experiments.json or a state
// file); snapshots are mapped, not read.
const maxSetFile = 8 << 20

// LoadSet reads an experiment set from a snapshot (.snap: its experiments
// section), a builder state file (experiments.state.json) or an
// experiments.json (checked with the builder's rules, file:line).
func LoadSet(path string) (*abtest.Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	f.Close()
	if n > 0 && !bytes.HasPrefix(bytes.TrimLeft(head[:n], " \t\r\n"), []byte("{")) {
		r, err := snapshot.Open(path)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		s, err := abtest.ParseSet(r.ExperimentsJSON())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &s, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > maxSetFile {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, len(b), maxSetFile)
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(b, &probe) == nil && probe["set"] != nil && probe["id"] == nil {
		st, err := builder.ReadState(path)
		if err != nil {
			return nil, err
		}
		return &st.Set, nil
	}
	e, err := inventory.ParseExperiments(filepath.Base(path), b, nil)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// SnapshotBucketer is the edge's bucketer of a snapshot file (the same
// abtest.SnapshotBucketer call the edge makes). invalid says why the set
// is refused: the edge then serves everyone as control, and so does this.
func SnapshotBucketer(path string) (b *abtest.Bucketer, invalid error, err error) {
	r, err := snapshot.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	b, invalid = abtest.SnapshotBucketer(r.ExperimentsJSON(), abtest.Defaults)
	return b, invalid, nil
}

// WriteBucket prints one line per layer for device: "device layer test
// variant" (layer "-" for a set without layers, device "-" when empty).
func WriteBucket(w io.Writer, b *abtest.Bucketer, device string) error {
	a := b.Assign([]byte(device))
	if device == "" {
		device = "-"
	}
	for l := 0; l < b.NumLayers(); l++ {
		layer, test, variant := b.LayerLabels(a, l)
		if layer == "" {
			layer = "-"
		}
		if _, err := fmt.Fprintf(w, "%s %s %s %s\n", device, layer, test, variant); err != nil {
			return err
		}
	}
	return nil
}

// maxDeviceLine bounds one line of a --devices file.
const maxDeviceLine = 4096

// WriteBuckets is WriteBucket for each line of r (a device id a line;
// blank lines are devices without an id).
func WriteBuckets(w io.Writer, b *abtest.Bucketer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxDeviceLine)
	bw := bufio.NewWriter(w)
	line := 0
	for sc.Scan() {
		line++
		if err := WriteBucket(bw, b, strings.TrimRight(sc.Text(), "\r")); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d: longer than %d bytes: not a device id", line+1, maxDeviceLine)
		}
		_ = bw.Flush()
		return err
	}
	return bw.Flush()
}

// pct renders a fraction as a percentage.
func pct(f float64) string { return fmt.Sprintf("%.2f%%", f*100) }

// WriteDiff prints, for each test of old and new, its shares and the
// fraction of its users the new set moves (0% for an unchanged test), then
// the builder's verdict. refused is false when the builder would build
// new after old.
func WriteDiff(w io.Writer, old, new *abtest.Set) (refused bool, err error) {
	tw := &table{}
	tw.row("test", "layer", "old share", "new share", "users moved", "to other tests", "held out", "status")
	for _, m := range abtest.Moves(old, new) {
		layer := m.Layer
		if layer == "" {
			layer = "-"
		}
		moved, other, held := pct(m.Moved), pct(m.ToOther), pct(m.Held)
		if m.Status == "new" {
			moved, other, held = "-", "-", "-"
		}
		status := m.Status
		if m.Resalted {
			status += " (re-salted: expected values)"
		}
		if m.From > 0 {
			status += fmt.Sprintf(" (%s of its new users were in other tests)", pct(m.From))
		}
		tw.row(m.Test, layer, pct(m.OldShare), pct(m.NewShare), moved, other, held, status)
	}
	if err := tw.write(w); err != nil {
		return false, err
	}
	ps := new.CheckChange(old, nil)
	if len(ps) == 0 {
		_, err = fmt.Fprintln(w, "\nthe builder would accept this change: no running test's users move to another test")
		return false, err
	}
	fmt.Fprintln(w, "\nthe builder would refuse this change:")
	for _, p := range ps {
		fmt.Fprintf(w, "  %s\n", p)
	}
	return true, nil
}

// table aligns columns.
type table struct{ rows [][]string }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	var width []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			fmt.Fprintf(&b, "%-*s  ", width[i], c)
		}
		if _, err := fmt.Fprintln(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}
