// Package rows is the A/B rows file format: one JSON line per abtest.Row,
// written atomically with the row count and the content's xxhash64 in the
// file name, read back strictly (any problem refuses the whole file),
// listed and pruned. Edges write them (FileSink); adtool abreport and
// stagecheck read them.
package rows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/internal/atomicfile"
)

// FileSink is an abtest.FlushConfig.Write that writes each interval's rows
// as a rows file in dir and, with keep > 0, deletes files older than keep.
func FileSink(dir, edge string, keep time.Duration) func(start, end time.Time, rows []abtest.Row) error {
	return func(start, end time.Time, rows []abtest.Row) error {
		_, err := WriteFile(dir, edge, start, rows)
		if keep > 0 {
			err = errors.Join(err, Prune(dir, end.Add(-keep)))
		}
		return err
	}
}

// Rows files are named rows-<edge>-<start>-<rows>-<xxhash64 hex>.jsonl: the
// row count and the checksum of the content are in the name, so a
// truncated or altered copy is detected and refused as a whole.
const rowsPrefix, rowsSuffix = "rows-", ".jsonl"

// safeName keeps [A-Za-z0-9._] and maps the rest to '_'.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "edge"
	}
	return string(b)
}

// WriteFile writes rows atomically (temp file, fsync, rename, fsync of
// the directory) and returns the file's path. An interval with no rows
// writes nothing.
func WriteFile(dir, edge string, start time.Time, rows []abtest.Row) (string, error) {
	if len(rows) == 0 {
		return "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return "", err
		}
	}
	name := fmt.Sprintf("%s%s-%s-%d-%016x%s", rowsPrefix, safeName(edge), start.UTC().Format("20060102T150405.000Z"),
		len(rows), xxhash.Sum64(buf.Bytes()), rowsSuffix)
	path := filepath.Join(dir, name)
	// Temp, fsync, rename, directory fsync; 0644 because analysts' tools
	// read the files.
	if err := atomicfile.WriteBytes(path, buf.Bytes()); err != nil {
		return "", err
	}
	return path, nil
}

// Prune deletes rows files whose interval started before cutoff.
func Prune(dir string, cutoff time.Time) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		meta, ok := parseRowsName(e.Name())
		if ok && meta.start.Before(cutoff) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

type rowsMeta struct {
	start time.Time
	rows  int
	sum   uint64
}

func parseRowsName(name string) (rowsMeta, bool) {
	if !strings.HasPrefix(name, rowsPrefix) || !strings.HasSuffix(name, rowsSuffix) {
		return rowsMeta{}, false
	}
	parts := strings.Split(strings.TrimSuffix(name, rowsSuffix), "-")
	if len(parts) < 5 {
		return rowsMeta{}, false
	}
	n := len(parts)
	st, err1 := time.Parse("20060102T150405.000Z", parts[n-3])
	rows, err2 := strconv.Atoi(parts[n-2])
	sum, err3 := strconv.ParseUint(parts[n-1], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || len(parts[n-1]) != 16 || rows <= 0 {
		return rowsMeta{}, false
	}
	return rowsMeta{start: st, rows: rows, sum: sum}, true
}

// MaxFileBytes bounds what ReadFile reads (a minute of one edge is
// a few MiB at most).
const MaxFileBytes = 512 << 20

// ReadFile reads and checks one rows file: name, size, checksum, row
// count and every row. Any problem refuses the whole file, so a report
// never merges part of one.
func ReadFile(path string) ([]abtest.Row, error) {
	meta, ok := parseRowsName(filepath.Base(path))
	if !ok {
		return nil, errors.New("not a rows file name (rows-<edge>-<start>-<rows>-<xxhash>.jsonl)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%d bytes, over the %d limit", st.Size(), MaxFileBytes)
	}
	data, err := readAll(f)
	if err != nil {
		return nil, err
	}
	if got := xxhash.Sum64(data); got != meta.sum {
		n := bytes.Count(data, []byte{'\n'})
		return nil, fmt.Errorf("checksum %016x, name says %016x (truncated or altered: %d of %d lines)", got, meta.sum, n, meta.rows)
	}
	rows := make([]abtest.Row, 0, meta.rows)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		r, err := Parse(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(rows) != meta.rows {
		return nil, fmt.Errorf("%d rows, name says %d", len(rows), meta.rows)
	}
	return rows, nil
}

func readAll(f *os.File) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(f)
	return buf.Bytes(), err
}

// Parse decodes and checks one rows line strictly: unknown fields,
// missing labels, bad shards, histograms of the wrong size and undecodable
// sketches are all refused.
func Parse(line []byte) (abtest.Row, error) {
	var r abtest.Row
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return abtest.Row{}, err
	}
	if d.More() {
		return abtest.Row{}, errors.New("data after the row object")
	}
	if err := Check(&r); err != nil {
		return abtest.Row{}, err
	}
	return r, nil
}

// Check is the rule every row must pass, whatever it was read from (a
// rows file, a warehouse's answer): labels present, shard, share, test
// index and histogram in range, a decodable sketch.
func Check(r *abtest.Row) error {
	switch {
	case r.Start.IsZero() || r.End.IsZero() || r.End.Before(r.Start):
		return errors.New("start/end missing or reversed")
	case r.Env == "" || r.Test == "" || r.Variant == "":
		return errors.New("env, test and variant are required")
	case r.Shard >= abtest.Shards:
		return fmt.Errorf("shard %d, want < %d", r.Shard, abtest.Shards)
	case r.ShareBP > abtest.Slots:
		return fmt.Errorf("share_bp %d, want <= %d", r.ShareBP, abtest.Slots)
	case r.TestIndex > abtest.MaxTests:
		return fmt.Errorf("test_index %d, want <= %d", r.TestIndex, abtest.MaxTests)
	case len(r.LatencyUS) != abtest.NumLatencyBuckets:
		return fmt.Errorf("latency_us has %d buckets, want %d", len(r.LatencyUS), abtest.NumLatencyBuckets)
	}
	if r.Breakdown != "" {
		if err := checkBreakdown(r); err != nil {
			return err
		}
	}
	// No cross-field checks (fills <= requests, histogram total ==
	// requests): a request in flight at a flush may have its request counted
	// in one row and its fill or latency in the next, so they hold over
	// rows, not per row. The file name's checksum guards the content.
	_, err := r.Sketch()
	return err
}

// checkBreakdown is the rule for breakdown rows: a known dimension, only
// that dimension's field set, no forward errors or sketch (users and
// staging's failures are not broken down). Impressions, clicks and
// revenue are those whose tracking tokens carried the value.
func checkBreakdown(r *abtest.Row) error {
	set := map[string]string{abtest.DimCountry: r.Country, abtest.DimOS: r.OS, abtest.DimFormat: r.Format}
	if _, ok := set[r.Breakdown]; !ok {
		return fmt.Errorf("breakdown %q, want one of %v", r.Breakdown, abtest.DimNames)
	}
	for d, v := range set {
		if d != r.Breakdown && v != "" {
			return fmt.Errorf("breakdown row by %s also sets %s", r.Breakdown, d)
		}
	}
	if r.ForwardErrors != 0 || r.HLL != "" {
		return fmt.Errorf("breakdown row by %s carries forward errors or a sketch (neither is broken down)", r.Breakdown)
	}
	return nil
}

// ListFiles returns the rows files under each dir (not recursive),
// plus the names in them that look like rows files but do not parse as
// one (for the report's list of skipped files).
func ListFiles(dirs []string) (files []string, err error) {
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() && strings.HasPrefix(e.Name(), rowsPrefix) && strings.HasSuffix(e.Name(), rowsSuffix) {
				files = append(files, filepath.Join(d, e.Name()))
			}
		}
	}
	return files, nil
}
