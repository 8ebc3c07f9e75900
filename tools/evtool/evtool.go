// Package evtool reads an edge's event log offline for `adtool events`:
// decoded records (cat) and counts by kind with duplicates and damage
// (stats). It reads with the edge's own reader and decoder.
package evtool

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/wal"
)

// KindCount is one kind's tally: distinct event ids and the records beyond
// the first of each id (flagged replays, re-sends after the window).
type KindCount struct {
	Unique     int64 `json:"unique"`
	Duplicates int64 `json:"duplicates"`
}

// Stats is `adtool events stats --json`: one object, each kind's counts at
// the top level next to the damage found.
type Stats struct {
	Kinds          map[string]*KindCount
	Records        int64
	Undecodable    int64 // valid frames whose record this version cannot read
	DamagedRecords int64 // damaged spans skipped (each one or more records)
	DamagedBytes   int64
	TornBytes      int64
	PriceMicros    int64 // sum over unique impressions
}

// walk calls fn for each record of dir in order.
func walk(dir string, fn func(e *events.Event, raw []byte) error) (*wal.Reader, int64, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, 0, err
	}
	r := wal.NewReader(dir, wal.Pos{}, nil)
	var bad int64
	var e events.Event
	for {
		recs, err := r.Next(1024)
		if err != nil {
			return r, bad, err
		}
		if len(recs) == 0 {
			return r, bad, nil
		}
		for _, x := range recs {
			if e.Decode(x.Payload) != nil {
				bad++
				continue
			}
			if err := fn(&e, x.Payload); err != nil {
				return r, bad, err
			}
		}
	}
}

// ComputeStats counts dir's records by kind and id.
func ComputeStats(dir string) (*Stats, error) {
	st := &Stats{Kinds: map[string]*KindCount{}}
	for _, k := range events.Kinds[:3] {
		st.Kinds[k.String()] = &KindCount{}
	}
	seen := map[[events.IDSize + 1]byte]struct{}{}
	r, bad, err := walk(dir, func(e *events.Event, _ []byte) error {
		st.Records++
		kc := st.Kinds[e.Kind.String()]
		if kc == nil {
			kc = &KindCount{}
			st.Kinds[e.Kind.String()] = kc
		}
		var key [events.IDSize + 1]byte
		key[0] = byte(e.Kind)
		copy(key[1:], e.ID[:])
		if _, dup := seen[key]; dup || e.Duplicate() {
			kc.Duplicates++
			return nil
		}
		seen[key] = struct{}{}
		kc.Unique++
		if e.Kind == events.KindImp {
			st.PriceMicros += e.PriceMicros
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Undecodable = bad
	st.DamagedRecords = int64(len(r.Damaged))
	for _, d := range r.Damaged {
		st.DamagedBytes += d.Len
	}
	st.TornBytes = r.Torn
	return st, nil
}

// AppendJSON writes the stats object: {"ad":{"unique":N,"duplicates":M},
// "imp":..., "click":..., "damaged_records":N, ...}.
func (st *Stats) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for _, k := range events.Kinds {
		kc := st.Kinds[k.String()]
		if kc == nil {
			continue
		}
		b = fmt.Appendf(b, "%q:{\"unique\":%d,\"duplicates\":%d},", k.String(), kc.Unique, kc.Duplicates)
	}
	for name, kc := range st.Kinds { // kinds this list does not name yet
		if known(name) {
			continue
		}
		b = fmt.Appendf(b, "%q:{\"unique\":%d,\"duplicates\":%d},", name, kc.Unique, kc.Duplicates)
	}
	b = fmt.Appendf(b, "\"records\":%d,\"impression_price_micros\":%d,\"damaged_records\":%d,\"damaged_bytes\":%d,\"torn_bytes\":%d,\"undecodable\":%d}",
		st.Records, st.PriceMicros, st.DamagedRecords, st.DamagedBytes, st.TornBytes, st.Undecodable)
	return b
}

func known(name string) bool {
	for _, k := range events.Kinds {
		if k.String() == name {
			return true
		}
	}
	return false
}

// WriteText prints the stats as a table.
func (st *Stats) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%-8s %12s %12s\n", "kind", "unique", "duplicates")
	for _, k := range events.Kinds {
		if kc := st.Kinds[k.String()]; kc != nil {
			fmt.Fprintf(bw, "%-8s %12d %12d\n", k, kc.Unique, kc.Duplicates)
		}
	}
	fmt.Fprintf(bw, "records %d, unique impressions' price %d micros\n", st.Records, st.PriceMicros)
	fmt.Fprintf(bw, "damaged spans %d (%d bytes), torn tail %d bytes, undecodable records %d\n",
		st.DamagedRecords, st.DamagedBytes, st.TornBytes, st.Undecodable)
	return bw.Flush()
}

// Cat writes every record of dir, one per line: the ClickHouse row JSON
// (jsonl) or a short text form. It reports the damage it passed.
func Cat(w io.Writer, dir string, jsonl bool) (*wal.Reader, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	r, _, err := walk(dir, func(e *events.Event, _ []byte) error {
		line = line[:0]
		if jsonl {
			line = e.AppendJSON(line)
		} else {
			dup := ""
			if e.Duplicate() {
				dup = " duplicate"
			}
			line = fmt.Appendf(line, "%s %-5s %s%s campaign=%s creative=%s placement=%s price=%d edge=%s",
				time.UnixMilli(e.Time).UTC().Format("2006-01-02T15:04:05.000Z"), e.Kind, e.ID, dup,
				e.Campaign, e.Creative, e.Placement, e.PriceMicros, e.Edge)
		}
		line = append(line, '\n')
		_, err := bw.Write(line)
		return err
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return r, err
}
