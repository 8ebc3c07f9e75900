package snaptool

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/snapshot"
)

// InspectOptions configure Inspect.
type InspectOptions struct {
	// Top is how many of the biggest candidate lists to show; 0 means 10,
	// negative means none.
	Top int
	// JSON writes an InspectReport as JSON instead of text.
	JSON bool
}

// InspectReport is what Inspect prints; with InspectOptions.JSON it is
// written as is.
type InspectReport struct {
	Path          string              `json:"path"`
	Version       string              `json:"version"`
	FormatVersion uint32              `json:"format_version"`
	Created       string              `json:"created"` // RFC 3339 UTC, the data time
	CreatedUnix   int64               `json:"created_unix"`
	ContentHash   string              `json:"content_hash"` // 16 hex digits
	Size          int                 `json:"size"`
	Counts        InspectCounts       `json:"counts"`
	Sections      []SectionStat       `json:"sections"`
	FramingBytes  uint64              `json:"framing_bytes"` // header, padding, table, footer
	TopLists      []ListStat          `json:"top_lists"`
	Experiments   *ExperimentsSummary `json:"experiments"`
}

// InspectCounts are the snapshot's record counts.
type InspectCounts struct {
	Campaigns        int `json:"campaigns"`
	Creatives        int `json:"creatives"`
	Placements       int `json:"placements"`
	Advertisers      int `json:"advertisers"`
	Categories       int `json:"categories"`
	Segments         int `json:"segments"`
	CandidateEntries int `json:"candidate_entries"`
	NonEmptyKeys     int `json:"non_empty_keys"`
	// EndedCampaigns ended at or before the data time: kept as records but
	// in no candidate list.
	EndedCampaigns int `json:"ended_campaigns"`
}

// SectionStat is one section-table entry with its share of the file.
type SectionStat struct {
	Name       string  `json:"name"`
	ID         uint32  `json:"id"`
	Offset     uint64  `json:"offset"`
	Bytes      uint64  `json:"bytes"`
	Percent    float64 `json:"percent"`
	RecordSize uint32  `json:"record_size"` // 0 for blobs
	Records    uint64  `json:"records"`
	XXHash64   string  `json:"xxhash64"`
}

// ListStat describes one (format, country, OS) candidate list.
type ListStat struct {
	Key           string `json:"key"` // "format/country/os"
	Candidates    int    `json:"candidates"`
	TopCampaign   string `json:"top_campaign"`
	TopECPMMicros int64  `json:"top_ecpm_micros"`
}

// ExperimentsSummary is the experiment set shipped in the snapshot.
type ExperimentsSummary struct {
	ID        string        `json:"id"`
	Salt      string        `json:"salt"`
	ControlBP int           `json:"control_bp"` // 10000 minus the tests' shares
	Tests     []TestSummary `json:"tests"`
	Error     string        `json:"error,omitempty"` // set when the JSON does not have the expected shape
}

// TestSummary is one A/B test of the experiment set.
type TestSummary struct {
	ID      string             `json:"id"`
	Variant string             `json:"variant"`
	ShareBP uint32             `json:"share_bp"`
	Params  map[string]float64 `json:"params"`
}

// Inspect writes a summary of the snapshot at path: header, size, counts,
// bytes per section, the biggest candidate lists and the experiment set.
func Inspect(w io.Writer, path string, opts InspectOptions) error {
	r, err := snapshot.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	rep := BuildInspectReport(r, opts.Top)
	rep.Path = path
	if opts.JSON {
		return writeJSON(w, rep)
	}
	return rep.writeText(w)
}

// BuildInspectReport computes Inspect's report from an open snapshot; top
// is as InspectOptions.Top.
func BuildInspectReport(r *snapshot.Reader, top int) *InspectReport {
	if top == 0 {
		top = 10
	}
	h := r.Header()
	rep := &InspectReport{
		Version:       h.Version,
		FormatVersion: h.FormatVersion,
		Created:       unixTime(h.Created),
		CreatedUnix:   h.Created,
		ContentHash:   snapshot.Hex16(h.ContentHash),
		Size:          r.Size(),
		Counts: InspectCounts{
			Campaigns:   r.NumCampaigns(),
			Creatives:   r.NumCreatives(),
			Placements:  r.NumPlacements(),
			Advertisers: r.NumAdvertisers(),
			Categories:  r.NumCategories(),
			Segments:    r.NumSegments(),
		},
		TopLists: []ListStat{},
	}
	var secBytes uint64
	for _, s := range r.Sections() {
		rep.Sections = append(rep.Sections, SectionStat{
			Name: s.Name(), ID: s.ID, Offset: s.Offset, Bytes: s.Length,
			Percent:    100 * float64(s.Length) / float64(max(r.Size(), 1)),
			RecordSize: s.RecordSize, Records: s.Count, XXHash64: snapshot.Hex16(s.XXHash64),
		})
		secBytes += s.Length
		if s.ID == snapshot.SecCandidates {
			rep.Counts.CandidateEntries = int(s.Count)
		}
	}
	if uint64(r.Size()) > secBytes {
		rep.FramingBytes = uint64(r.Size()) - secBytes
	}
	for i := 0; i < r.NumCampaigns(); i++ {
		if c, _ := r.Campaign(i); c.End <= h.Created {
			rep.Counts.EndedCampaigns++
		}
	}

	type keyLen struct{ key, n int }
	var lists []keyLen
	for k := 0; k < snapshot.NumKeys; k++ {
		if n := r.CandidatesAt(k).Len(); n > 0 {
			lists = append(lists, keyLen{k, n})
		}
	}
	rep.Counts.NonEmptyKeys = len(lists)
	slices.SortFunc(lists, func(a, b keyLen) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.key, b.key)) })
	if top > 0 {
		for _, kl := range lists[:min(top, len(lists))] {
			c := r.CandidatesAt(kl.key).At(0)
			rep.TopLists = append(rep.TopLists, ListStat{Key: keyName(kl.key), Candidates: kl.n,
				TopCampaign: campaignID(r, c.Campaign), TopECPMMicros: c.ECPMMicros})
		}
	}
	rep.Experiments = summarizeExperiments(r.ExperimentsJSON())
	return rep
}

func summarizeExperiments(b []byte) *ExperimentsSummary {
	var es abtest.Set
	if err := json.Unmarshal(b, &es); err != nil {
		return &ExperimentsSummary{Error: err.Error(), Tests: []TestSummary{}}
	}
	s := &ExperimentsSummary{ID: es.ID, Salt: es.Salt, ControlBP: 10000, Tests: []TestSummary{}}
	for _, t := range es.Tests {
		s.ControlBP -= int(t.ShareBP)
		s.Tests = append(s.Tests, TestSummary{ID: t.ID, Variant: t.Variant, ShareBP: t.ShareBP, Params: t.Params})
	}
	return s
}

func pct(bp int) string { return fmt.Sprintf("%.2f%%", float64(bp)/100) }

func (rep *InspectReport) writeText(w io.Writer) error {
	tw := newTab(w)
	fmt.Fprintf(tw, "file\t%s\n", rep.Path)
	fmt.Fprintf(tw, "version\t%s\n", rep.Version)
	fmt.Fprintf(tw, "format version\t%d\n", rep.FormatVersion)
	fmt.Fprintf(tw, "created\t%s\n", rep.Created)
	fmt.Fprintf(tw, "content hash\t%s\n", rep.ContentHash)
	fmt.Fprintf(tw, "size\t%d bytes (%s)\n", rep.Size, bytesHuman(uint64(rep.Size)))
	fmt.Fprintln(tw)
	c := rep.Counts
	for _, kv := range []struct {
		k string
		v int
	}{
		{"campaigns", c.Campaigns}, {"  ended at data time", c.EndedCampaigns}, {"creatives", c.Creatives},
		{"placements", c.Placements}, {"advertisers", c.Advertisers}, {"categories", c.Categories},
		{"segments", c.Segments}, {"candidate entries", c.CandidateEntries},
		{"non-empty keys", c.NonEmptyKeys},
	} {
		fmt.Fprintf(tw, "%s\t%d\n", kv.k, kv.v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nsections")
	tw = newTab(w)
	fmt.Fprintln(tw, "  name\tbytes\t\t% file\trecord\trecords\txxhash64\t")
	for _, s := range rep.Sections {
		rec := "blob"
		if s.RecordSize > 0 {
			rec = fmt.Sprintf("%d B", s.RecordSize)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%.1f%%\t%s\t%d\t%s\t\n", s.Name, s.Bytes, bytesHuman(s.Bytes), s.Percent, rec, s.Records, s.XXHash64)
	}
	fmt.Fprintf(tw, "  (framing)\t%d\t%s\t%.1f%%\t\t\t\t\n", rep.FramingBytes, bytesHuman(rep.FramingBytes), 100*float64(rep.FramingBytes)/float64(max(rep.Size, 1)))
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(rep.TopLists) > 0 {
		fmt.Fprintf(w, "\nbiggest candidate lists (%d of %d non-empty)\n", len(rep.TopLists), rep.Counts.NonEmptyKeys)
		tw = newTab(w)
		for _, l := range rep.TopLists {
			fmt.Fprintf(tw, "  %s:\t%d candidates,\ttop eCPM %s\t(%s)\n", l.Key, l.Candidates, money(l.TopECPMMicros), l.TopCampaign)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	e := rep.Experiments
	if e == nil {
		return nil
	}
	if e.Error != "" {
		_, err := fmt.Fprintf(w, "\nexperiments: unreadable (%s)\n", e.Error)
		return err
	}
	fmt.Fprintf(w, "\nexperiments %q (salt %q): %d tests, control %s\n", e.ID, e.Salt, len(e.Tests), pct(e.ControlBP))
	tw = newTab(w)
	for _, t := range e.Tests {
		keys := make([]string, 0, len(t.Params))
		for k := range t.Params {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		params := make([]string, len(keys))
		for i, k := range keys {
			params[i] = fmt.Sprintf("%s=%g", k, t.Params[k])
		}
		fmt.Fprintf(tw, "  %s\t%s\tshare_bp %d (%s)\t%s\n", t.ID, t.Variant, t.ShareBP, pct(int(t.ShareBP)), strings.Join(params, " "))
	}
	return tw.Flush()
}
