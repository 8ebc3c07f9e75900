package snaptool

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/adedge/adedge/snapshot"
)

// DiffOptions configure Diff.
type DiffOptions struct {
	// Keys is how many of the busiest candidate lists (by candidate count
	// in the new snapshot) get a ranking comparison; 0 means 5, negative
	// none.
	Keys int
	// Top is how many ranks are compared per list; 0 means 10.
	Top int
	// Limit caps the ids listed per added/removed/changed group (the
	// counts are always complete); 0 means 50, negative means all.
	Limit int
	// JSON writes a DiffReport as JSON instead of text.
	JSON bool
}

// DiffReport is what Diff prints; with DiffOptions.JSON it is written as is.
type DiffReport struct {
	Old        SnapshotRef  `json:"old"`
	New        SnapshotRef  `json:"new"`
	Campaigns  ChangeSet    `json:"campaigns"`
	Creatives  ChangeSet    `json:"creatives"`
	Placements ChangeSet    `json:"placements"`
	Rankings   []KeyRanking `json:"rankings"`
	TopN       int          `json:"top_n"`
	Candidates [2]int       `json:"candidates"` // old, new entry counts
	Keys       [2]int       `json:"non_empty_keys"`
}

// SnapshotRef identifies one side of a diff.
type SnapshotRef struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Created string `json:"created"`
}

// ChangeSet lists records added, removed and changed between snapshots,
// matched by id. The counts are complete; the lists are capped by
// DiffOptions.Limit.
type ChangeSet struct {
	OldCount     int      `json:"old_count"`
	NewCount     int      `json:"new_count"`
	AddedCount   int      `json:"added_count"`
	RemovedCount int      `json:"removed_count"`
	ChangedCount int      `json:"changed_count"`
	Added        []string `json:"added"`
	Removed      []string `json:"removed"`
	Changed      []Change `json:"changed"`
	// FieldCounts counts changed records per field name.
	FieldCounts map[string]int `json:"field_counts"`
}

// Change is one record present in both snapshots with different fields.
type Change struct {
	ID     string        `json:"id"`
	Fields []FieldChange `json:"fields"`
}

// FieldChange is one differing field. For lists, Detail gives the
// elements added and removed ("+FR -DE").
type FieldChange struct {
	Field  string `json:"field"`
	Old    string `json:"old"`
	New    string `json:"new"`
	Detail string `json:"detail,omitempty"`
}

// KeyRanking compares the top of one candidate list.
type KeyRanking struct {
	Key           string    `json:"key"`
	OldCandidates int       `json:"old_candidates"`
	NewCandidates int       `json:"new_candidates"`
	Unchanged     bool      `json:"unchanged"` // same ids, order and eCPMs in the top N
	Rows          []RankRow `json:"rows"`      // the new top N
	Dropped       []RankRow `json:"dropped"`   // in the old top N, not in the new
}

// RankRow is one campaign's place in a list, old and new. Ranks are
// 1-based; 0 means absent from that snapshot's list.
type RankRow struct {
	Campaign string `json:"campaign"`
	NewRank  int    `json:"new_rank"`
	OldRank  int    `json:"old_rank"`
	NewECPM  int64  `json:"new_ecpm_micros"`
	OldECPM  int64  `json:"old_ecpm_micros"`
	Mark     string `json:"mark"` // "=", "up N", "down N", "new", "dropped", "gone"
}

// Diff compares two snapshots: campaigns, creatives and placements added,
// removed and changed (by id, naming the changed fields), and the ranking
// of the busiest candidate lists. Records are matched by a sorted-id merge,
// O(n) on files whose records are sorted by id (the builder's) and
// O(n log n) otherwise.
func Diff(w io.Writer, oldPath, newPath string, opts DiffOptions) error {
	ro, err := snapshot.Open(oldPath)
	if err != nil {
		return fmt.Errorf("old: %w", err)
	}
	defer ro.Close()
	rn, err := snapshot.Open(newPath)
	if err != nil {
		return fmt.Errorf("new: %w", err)
	}
	defer rn.Close()
	rep := BuildDiffReport(ro, rn, opts)
	rep.Old.Path, rep.New.Path = oldPath, newPath
	if opts.JSON {
		return writeJSON(w, rep)
	}
	return rep.writeText(w)
}

// BuildDiffReport computes Diff's report from two open snapshots.
func BuildDiffReport(ro, rn *snapshot.Reader, opts DiffOptions) *DiffReport {
	if opts.Keys == 0 {
		opts.Keys = 5
	}
	if opts.Top <= 0 {
		opts.Top = 10
	}
	if opts.Limit == 0 {
		opts.Limit = 50
	}
	rep := &DiffReport{
		Old:      SnapshotRef{Version: ro.Header().Version, Created: unixTime(ro.Header().Created)},
		New:      SnapshotRef{Version: rn.Header().Version, Created: unixTime(rn.Header().Created)},
		TopN:     opts.Top,
		Rankings: []KeyRanking{},
	}
	rep.Campaigns = diffRecords(ro.NumCampaigns(), rn.NumCampaigns(), opts.Limit,
		func(i int) string { return recID(ro, ro.Campaign, i) }, func(j int) string { return recID(rn, rn.Campaign, j) },
		newCampaignDiffer(ro, rn).diff)
	rep.Creatives = diffRecords(ro.NumCreatives(), rn.NumCreatives(), opts.Limit,
		func(i int) string { return recID(ro, ro.Creative, i) }, func(j int) string { return recID(rn, rn.Creative, j) },
		func(i, j int) []FieldChange { return diffCreative(ro, rn, i, j) })
	rep.Placements = diffRecords(ro.NumPlacements(), rn.NumPlacements(), opts.Limit,
		func(i int) string { return recID(ro, ro.Placement, i) }, func(j int) string { return recID(rn, rn.Placement, j) },
		func(i, j int) []FieldChange { return diffPlacement(ro, rn, i, j) })

	type keyLen struct{ key, n int }
	var busiest []keyLen
	for k := 0; k < snapshot.NumKeys; k++ {
		if n := rn.CandidatesAt(k).Len(); n > 0 {
			busiest = append(busiest, keyLen{k, n})
			rep.Candidates[1] += n
			rep.Keys[1]++
		}
		if n := ro.CandidatesAt(k).Len(); n > 0 {
			rep.Candidates[0] += n
			rep.Keys[0]++
		}
	}
	slices.SortFunc(busiest, func(a, b keyLen) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.key, b.key)) })
	if opts.Keys > 0 {
		for _, kl := range busiest[:min(opts.Keys, len(busiest))] {
			rep.Rankings = append(rep.Rankings, rankKey(ro, rn, kl.key, opts.Top))
		}
	}
	return rep
}

// recID returns record i's id through the accessor get.
func recID[T interface {
	snapshot.Campaign | snapshot.Creative | snapshot.Placement
}](r *snapshot.Reader, get func(int) (T, bool), i int) string {
	v, ok := get(i)
	if !ok {
		return ""
	}
	switch x := any(v).(type) {
	case snapshot.Campaign:
		return r.String(x.ID)
	case snapshot.Creative:
		return r.String(x.ID)
	case snapshot.Placement:
		return r.String(x.ID)
	}
	return ""
}

// idOrder returns record indexes in id order: the identity when the ids
// are already strictly ascending (as the builder writes them), else a
// sorted permutation, so a hostile file cannot make the merge wrong.
func idOrder(n int, id func(int) string) ([]int, []string) {
	ids := make([]string, n)
	order := make([]int, n)
	sorted := true
	for i := range n {
		ids[i], order[i] = id(i), i
		if i > 0 && ids[i] <= ids[i-1] {
			sorted = false
		}
	}
	if !sorted {
		slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(ids[a], ids[b]) })
	}
	return order, ids
}

// diffRecords merges two id-sorted record sets.
func diffRecords(nOld, nNew, limit int, oldID, newID func(int) string, fields func(i, j int) []FieldChange) ChangeSet {
	cs := ChangeSet{OldCount: nOld, NewCount: nNew, Added: []string{}, Removed: []string{}, Changed: []Change{}, FieldCounts: map[string]int{}}
	oo, oids := idOrder(nOld, oldID)
	no, nids := idOrder(nNew, newID)
	room := func(n int) bool { return limit < 0 || n < limit }
	i, j := 0, 0
	for i < len(oo) || j < len(no) {
		var c int
		switch {
		case i == len(oo):
			c = 1
		case j == len(no):
			c = -1
		default:
			c = strings.Compare(oids[oo[i]], nids[no[j]])
		}
		switch {
		case c < 0:
			cs.RemovedCount++
			if room(len(cs.Removed)) {
				cs.Removed = append(cs.Removed, oids[oo[i]])
			}
			i++
		case c > 0:
			cs.AddedCount++
			if room(len(cs.Added)) {
				cs.Added = append(cs.Added, nids[no[j]])
			}
			j++
		default:
			if f := fields(oo[i], no[j]); len(f) > 0 {
				cs.ChangedCount++
				for _, fc := range f {
					cs.FieldCounts[fc.Field]++
				}
				if room(len(cs.Changed)) {
					cs.Changed = append(cs.Changed, Change{ID: nids[no[j]], Fields: f})
				}
			}
			i++
			j++
		}
	}
	return cs
}

// campaignDiffer compares campaigns field by field, by name rather than by
// index (dictionary indexes and creative indexes differ between builds).
type campaignDiffer struct {
	ro, rn             *snapshot.Reader
	bufA, bufB         []string
	bufC, bufD         []string
	countryA, countryB []string
}

func newCampaignDiffer(ro, rn *snapshot.Reader) *campaignDiffer {
	return &campaignDiffer{ro: ro, rn: rn}
}

func (d *campaignDiffer) diff(i, j int) []FieldChange {
	ro, rn := d.ro, d.rn
	a, _ := ro.Campaign(i)
	b, _ := rn.Campaign(j)
	var out []FieldChange
	scalar := func(field, o, n string) {
		if o != n {
			out = append(out, FieldChange{Field: field, Old: o, New: n})
		}
	}
	scalar("advertiser", nameOr(ro.Advertiser(a.Advertiser), a.Advertiser), nameOr(rn.Advertiser(b.Advertiser), b.Advertiser))
	scalar("category", nameOr(ro.Category(a.Category), a.Category), nameOr(rn.Category(b.Category), b.Category))
	scalar("bid_type", a.BidType.String(), b.BidType.String())
	scalar("bid", money(a.BidMicros), money(b.BidMicros))
	scalar("daily_budget", money(a.DailyBudgetMicros), money(b.DailyBudgetMicros))
	scalar("schedule", unixTime(a.Start)+" - "+unixTime(a.End), unixTime(b.Start)+" - "+unixTime(b.End))
	scalar("frequency_cap", freqCap(a), freqCap(b))
	scalar("promoted_app", ro.String(a.PromotedApp), rn.String(b.PromotedApp))
	scalar("targeting.os", osTargeting(a), osTargeting(b))
	scalar("targeting.device_types", strings.Join(deviceNames(a.DeviceTypes), ","), strings.Join(deviceNames(b.DeviceTypes), ","))

	d.countryA = countryCodes(ro, a.Countries, d.countryA)
	d.countryB = countryCodes(rn, b.Countries, d.countryB)
	out = appendListChange(out, "targeting.countries", d.countryA, d.countryB)
	d.bufA = segmentNames(ro, a.Segments, d.bufA)
	d.bufB = segmentNames(rn, b.Segments, d.bufB)
	slices.Sort(d.bufA)
	slices.Sort(d.bufB)
	out = appendListChange(out, "targeting.segments", d.bufA, d.bufB)
	d.bufC = creativeIDs(ro, a.Creatives, d.bufC)
	d.bufD = creativeIDs(rn, b.Creatives, d.bufD)
	out = appendListChange(out, "creatives", d.bufC, d.bufD)
	out = appendListChange(out, "allowed_bundles", dictNames(ro, a.AllowedBundles, ro.Bundle), dictNames(rn, b.AllowedBundles, rn.Bundle))
	out = appendListChange(out, "blocked_bundles", dictNames(ro, a.BlockedBundles, ro.Bundle), dictNames(rn, b.BlockedBundles, rn.Bundle))
	return out
}

func freqCap(c snapshot.Campaign) string {
	if c.FreqCapCount == 0 {
		return "none"
	}
	return fmt.Sprintf("%d per %ds", c.FreqCapCount, c.FreqCapPeriod)
}

func osTargeting(c snapshot.Campaign) string {
	var parts []string
	for o := snapshot.OS(0); o < snapshot.NumOS; o++ {
		if c.OSMask&(1<<o) == 0 {
			continue
		}
		s := o.String()
		if v := c.MinOSVersion[o]; v != 0 {
			s += ">=" + snapshot.FormatOSVersion(v)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

// countryCodes renders a country index list (sorted, as stored).
func countryCodes(r *snapshot.Reader, ref snapshot.ListRef, dst []string) []string {
	dst = dst[:0]
	l := r.List(ref)
	for i := 0; i < l.Len(); i++ {
		v := l.At(i)
		code := ""
		if v < snapshot.NumCountries {
			code = snapshot.CountryCode(uint16(v))
		}
		dst = append(dst, nameOr(code, v))
	}
	slices.Sort(dst)
	return dst
}

// creativeIDs renders a creative index list as sorted creative ids.
func creativeIDs(r *snapshot.Reader, ref snapshot.ListRef, dst []string) []string {
	dst = dst[:0]
	l := r.List(ref)
	for i := 0; i < l.Len(); i++ {
		v := l.At(i)
		dst = append(dst, nameOr(recID(r, r.Creative, int(v)), v))
	}
	slices.Sort(dst)
	return dst
}

// appendListChange compares two sorted string lists and records the
// difference as "+x -y".
func appendListChange(out []FieldChange, field string, a, b []string) []FieldChange {
	if slices.Equal(a, b) {
		return out
	}
	var detail []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			detail = append(detail, "-"+a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			detail = append(detail, "+"+b[j])
			j++
		default:
			i++
			j++
		}
	}
	const maxDetail = 20
	d := strings.Join(detail[:min(maxDetail, len(detail))], " ")
	if len(detail) > maxDetail {
		d += fmt.Sprintf(" (+%d more)", len(detail)-maxDetail)
	}
	return append(out, FieldChange{Field: field, Old: strings.Join(a, ","), New: strings.Join(b, ","), Detail: d})
}

func diffCreative(ro, rn *snapshot.Reader, i, j int) []FieldChange {
	a, _ := ro.Creative(i)
	b, _ := rn.Creative(j)
	var out []FieldChange
	scalar := func(field, o, n string) {
		if o != n {
			out = append(out, FieldChange{Field: field, Old: o, New: n})
		}
	}
	scalar("format", a.Format.String(), b.Format.String())
	scalar("size", fmt.Sprintf("%dx%d", a.Width, a.Height), fmt.Sprintf("%dx%d", b.Width, b.Height))
	scalar("asset_url", ro.String(a.AssetURL), rn.String(b.AssetURL))
	scalar("click_url", ro.String(a.ClickURL), rn.String(b.ClickURL))
	scalar("adomain", ro.String(a.ADomain), rn.String(b.ADomain))
	scalar("iab_category", CreativeCategory(ro, &a), CreativeCategory(rn, &b))
	scalar("duration", fmt.Sprint(a.DurationSeconds), fmt.Sprint(b.DurationSeconds))
	scalar("media_files", MediaFilesText(ro, &a), MediaFilesText(rn, &b))
	return out
}

// CreativeCategory is a creative's IAB category ("" when none).
func CreativeCategory(r *snapshot.Reader, cr *snapshot.Creative) string {
	if ci, ok := cr.HasCategory(); ok {
		return r.Category(ci)
	}
	return ""
}

// MediaFilesText renders a video's media files, one "mime WxH kbps delivery url" each.
func MediaFilesText(r *snapshot.Reader, cr *snapshot.Creative) string {
	var l []string
	for k := 0; k < int(cr.MediaFiles.Len); k++ {
		m, ok := r.MediaFile(int(cr.MediaFiles.Off) + k)
		if !ok {
			l = append(l, "(out of range)")
			break
		}
		l = append(l, fmt.Sprintf("%s %dx%d %dkbps %s %s", r.String(m.MIME), m.Width, m.Height, m.BitrateKbps, snapshot.DeliveryName(m.Delivery), r.String(m.URL)))
	}
	return strings.Join(l, "; ")
}

// PlacementFormats renders a placement's formats and flags
// ("banner,video interstitial rewarded").
func PlacementFormats(pl *snapshot.Placement) string {
	var l []string
	for f := snapshot.Format(0); f < snapshot.NumFormats; f++ {
		if pl.Formats.Has(f) {
			l = append(l, f.String())
		}
	}
	s := strings.Join(l, ",")
	if pl.Interstitial() {
		s += " interstitial"
	}
	if pl.Rewarded() {
		s += " rewarded"
	}
	return s
}

func diffPlacement(ro, rn *snapshot.Reader, i, j int) []FieldChange {
	a, _ := ro.Placement(i)
	b, _ := rn.Placement(j)
	var out []FieldChange
	scalar := func(field, o, n string) {
		if o != n {
			out = append(out, FieldChange{Field: field, Old: o, New: n})
		}
	}
	scalar("app", ro.String(a.App), rn.String(b.App))
	scalar("formats", PlacementFormats(&a), PlacementFormats(&b))
	scalar("floor", money(a.FloorMicros), money(b.FloorMicros))
	out = appendListChange(out, "blocked_advertisers", dictNames(ro, a.BlockedAdvertisers, ro.Advertiser), dictNames(rn, b.BlockedAdvertisers, rn.Advertiser))
	out = appendListChange(out, "blocked_categories", dictNames(ro, a.BlockedCategories, ro.Category), dictNames(rn, b.BlockedCategories, rn.Category))
	return out
}

// dictNames renders a list of dictionary indexes as sorted names.
func dictNames(r *snapshot.Reader, ref snapshot.ListRef, name func(uint32) string) []string {
	l := r.List(ref)
	out := make([]string, 0, l.Len())
	for i := 0; i < l.Len(); i++ {
		v := l.At(i)
		out = append(out, nameOr(name(v), v))
	}
	slices.Sort(out)
	return out
}

// rankKey compares the top n of one list in both snapshots. It scans each
// full list once to find where the other side's top campaigns went.
func rankKey(ro, rn *snapshot.Reader, key, n int) KeyRanking {
	lo, ln := ro.CandidatesAt(key), rn.CandidatesAt(key)
	kr := KeyRanking{Key: keyName(key), OldCandidates: lo.Len(), NewCandidates: ln.Len(), Rows: []RankRow{}, Dropped: []RankRow{}}

	type pos struct {
		rank int
		ecpm int64
	}
	// Where each side's top n sit in the other side's full list.
	find := func(r *snapshot.Reader, l snapshot.CandidateList, want map[string]pos) {
		left := len(want)
		for i := 0; i < l.Len() && left > 0; i++ {
			c := l.At(i)
			id := campaignID(r, c.Campaign)
			if p, ok := want[id]; ok && p.rank == 0 {
				want[id] = pos{i + 1, c.ECPMMicros}
				left--
			}
		}
	}
	// One side's top n campaigns, and where each sits in the other side.
	top := func(r *snapshot.Reader, l snapshot.CandidateList, other *snapshot.Reader, ol snapshot.CandidateList) ([]string, map[string]pos) {
		ids := make([]string, 0, n)
		in := map[string]pos{}
		for i := 0; i < min(n, l.Len()); i++ {
			id := campaignID(r, l.At(i).Campaign)
			ids = append(ids, id)
			in[id] = pos{}
		}
		find(other, ol, in)
		return ids, in
	}
	newTop, inOld := top(rn, ln, ro, lo)
	oldTop, inNew := top(ro, lo, rn, ln)

	kr.Unchanged = len(newTop) == len(oldTop)
	for i, id := range newTop {
		row := RankRow{Campaign: id, NewRank: i + 1, NewECPM: ln.At(i).ECPMMicros}
		p := inOld[id]
		row.OldRank, row.OldECPM = p.rank, p.ecpm
		switch {
		case p.rank == 0:
			row.Mark = "new"
		case p.rank > row.NewRank:
			row.Mark = fmt.Sprintf("up %d", p.rank-row.NewRank)
		case p.rank < row.NewRank:
			row.Mark = fmt.Sprintf("down %d", row.NewRank-p.rank)
		default:
			row.Mark = "="
		}
		if row.Mark != "=" || row.OldECPM != row.NewECPM {
			kr.Unchanged = false
		}
		kr.Rows = append(kr.Rows, row)
	}
	for i, id := range oldTop {
		if _, ok := inOld[id]; ok {
			continue // still in the new top n
		}
		p := inNew[id]
		row := RankRow{Campaign: id, OldRank: i + 1, OldECPM: lo.At(i).ECPMMicros, NewRank: p.rank, NewECPM: p.ecpm, Mark: "dropped"}
		if p.rank == 0 {
			row.Mark = "gone"
		}
		kr.Dropped = append(kr.Dropped, row)
		kr.Unchanged = false
	}
	return kr
}

func (cs *ChangeSet) totals(name string) string {
	return fmt.Sprintf("%s %d -> %d (+%d -%d ~%d)", name, cs.OldCount, cs.NewCount, cs.AddedCount, cs.RemovedCount, cs.ChangedCount)
}

func (rep *DiffReport) writeText(w io.Writer) error {
	fmt.Fprintf(w, "totals: %s; %s; %s; candidates %d -> %d; non-empty keys %d -> %d\n",
		rep.Campaigns.totals("campaigns"), rep.Creatives.totals("creatives"), rep.Placements.totals("placements"),
		rep.Candidates[0], rep.Candidates[1], rep.Keys[0], rep.Keys[1])
	tw := newTab(w)
	fmt.Fprintf(tw, "old\t%s\t%s\tcreated %s\n", rep.Old.Version, rep.Old.Path, rep.Old.Created)
	fmt.Fprintf(tw, "new\t%s\t%s\tcreated %s\n", rep.New.Version, rep.New.Path, rep.New.Created)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range []struct {
		name string
		cs   *ChangeSet
	}{{"campaigns", &rep.Campaigns}, {"creatives", &rep.Creatives}, {"placements", &rep.Placements}} {
		if err := g.cs.writeText(w, g.name); err != nil {
			return err
		}
	}
	if len(rep.Rankings) > 0 {
		fmt.Fprintf(w, "\nranking: top %d of the %d busiest lists in the new snapshot\n", rep.TopN, len(rep.Rankings))
	}
	for _, kr := range rep.Rankings {
		state := ""
		if kr.Unchanged {
			state = ", top unchanged"
		}
		fmt.Fprintf(w, "\n%s: %d candidates (old %d)%s\n", kr.Key, kr.NewCandidates, kr.OldCandidates, state)
		tw = newTab(w)
		fmt.Fprintln(tw, "  rank\tcampaign\teCPM\told rank\told eCPM\tchange\t")
		for _, row := range kr.Rows {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t\n", row.NewRank, row.Campaign, money(row.NewECPM), rankStr(row.OldRank), ecpmStr(row.OldRank, row.OldECPM), row.Mark)
		}
		for _, row := range kr.Dropped {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t\n", rankStr(row.NewRank), row.Campaign, ecpmStr(row.NewRank, row.NewECPM), row.OldRank, money(row.OldECPM), row.Mark)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func rankStr(r int) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprint(r)
}

func ecpmStr(rank int, e int64) string {
	if rank == 0 {
		return "-"
	}
	return money(e)
}

func (cs *ChangeSet) writeText(w io.Writer, name string) error {
	if cs.AddedCount+cs.RemovedCount+cs.ChangedCount == 0 {
		_, err := fmt.Fprintf(w, "\n%s: no changes\n", name)
		return err
	}
	fmt.Fprintf(w, "\n%s: +%d added, -%d removed, ~%d changed\n", name, cs.AddedCount, cs.RemovedCount, cs.ChangedCount)
	if len(cs.FieldCounts) > 0 {
		fields := make([]string, 0, len(cs.FieldCounts))
		for f := range cs.FieldCounts {
			fields = append(fields, f)
		}
		slices.Sort(fields)
		parts := make([]string, len(fields))
		for i, f := range fields {
			parts[i] = fmt.Sprintf("%s %d", f, cs.FieldCounts[f])
		}
		fmt.Fprintf(w, "  changed fields: %s\n", strings.Join(parts, ", "))
	}
	tw := newTab(w)
	for _, id := range cs.Added {
		fmt.Fprintf(tw, "  +\t%s\t\n", id)
	}
	if n := cs.AddedCount - len(cs.Added); n > 0 {
		fmt.Fprintf(tw, "  +\t... %d more\t\n", n)
	}
	for _, id := range cs.Removed {
		fmt.Fprintf(tw, "  -\t%s\t\n", id)
	}
	if n := cs.RemovedCount - len(cs.Removed); n > 0 {
		fmt.Fprintf(tw, "  -\t... %d more\t\n", n)
	}
	for _, c := range cs.Changed {
		for k, f := range c.Fields {
			id := ""
			if k == 0 {
				id = c.ID
			}
			change := f.Detail
			if change == "" {
				change = f.Old + " -> " + f.New
			}
			fmt.Fprintf(tw, "  ~\t%s\t%s\t%s\n", id, f.Field, change)
		}
	}
	if n := cs.ChangedCount - len(cs.Changed); n > 0 {
		fmt.Fprintf(tw, "  ~\t... %d more\t\t\n", n)
	}
	return tw.Flush()
}
