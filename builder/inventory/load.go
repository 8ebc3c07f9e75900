package inventory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/snapshot"
)

// Options tune Load. The zero value is ready to use.
type Options struct {
	// Now is the clock used to count campaigns that have already ended
	// (Inventory.EndedCampaigns). Default time.Now.
	Now func() time.Time
	// Progress, if set, is called about every 100,000 records of a phase
	// and once at the end of each phase with the phase's record count.
	// Phases: "campaigns", "creatives", "placements", "predictions",
	// "experiments", "references". Calls are serialised (never concurrent)
	// but come from several goroutines.
	Progress func(phase string, records int)
	// Previous is the experiment set the edges run now (the builder's
	// state file): a new experiments.json that would move a running
	// test's users, or reuse a test id for another treatment, is refused.
	// Nil skips those checks (a first build).
	Previous *Previous
}

// Previous is the experiment set a build replaces, and the tests that ran
// before it and ended (whose ids may not come back with other parameters).
type Previous struct {
	Set     *Experiments
	Retired []ExperimentTest
	Source  string // where it was read, for messages
}

// InputFile describes one input file as Load read it; the builder copies
// these into manifest.json.
type InputFile struct {
	Name     string // base name, e.g. "campaigns.jsonl"
	Size     int64  // bytes read
	XXHash64 uint64 // xxhash64 of the raw bytes (render as 16 hex digits)
}

// PredictionRow is one compact, resolved predictions.jsonl row (16 bytes).
type PredictionRow struct {
	Campaign    int32   // index into Inventory.Campaigns
	Country     uint16  // snapshot.CountryIndex
	OS          uint8   // snapshot.OS
	_           uint8   // padding
	CTR         float32 // clicks per impression, [0,1]
	InstallRate float32 // installs per impression, [0,1]
}

// Inventory is a loaded, fully validated inventory directory. Slices are
// sorted by ID (byte-wise) so indexes are stable for a given input, and
// every cross-reference resolves. Treat it as read-only.
type Inventory struct {
	Campaigns   []Campaign      // sorted by ID; CreativeIDs share the Creative.ID strings
	Creatives   []Creative      // sorted by ID
	Placements  []Placement     // sorted by ID
	Predictions []PredictionRow // sorted by (Campaign, Country, OS); sparse
	Experiments Experiments
	Inputs      []InputFile // one per file read, in the order of Files

	// EndedCampaigns counts campaigns whose end is at or before
	// Options.Now. They are valid and kept (an export may be served for a
	// while); the count is for the build log.
	EndedCampaigns int

	// predStart[i]..predStart[i+1] is campaign i's run of Predictions.
	predStart []int32
}

// Files lists the inventory files Load reads, in report order. All are
// required; ProfilesFile is not read by the builder.
var Files = []string{CampaignsFile, CreativesFile, PlacementsFile, PredictionsFile, ExperimentsFile}

const (
	fileCampaigns = iota
	fileCreatives
	filePlacements
	filePredictions
	fileExperiments
	numFiles
)

const progressEvery = 100_000

// Load reads and validates the inventory in dir. It reads every file and
// collects every problem before returning; if there is any, it returns a
// *ValidationError (and a nil Inventory). Errors that are not about the
// inventory's content (dir is not a directory) are returned as is.
//
// Files are streamed line by line (never held whole) and hashed as they
// are read. Two goroutines parse them: one campaigns then predictions
// (which resolve against the campaigns), the other creatives; placements
// go to whichever is free first. Campaign-to-creative references are
// checked once both are in.
func Load(dir string, opts Options) (*Inventory, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("inventory: %s is not a directory", dir)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	l := &loader{dir: dir, opts: opts, now: now()}
	for i := range l.probs {
		l.probs[i] = &collector{file: Files[i]}
	}
	// Two workers (the target box has two cores): predictions need the
	// campaigns, so one worker does both; placements go to whichever
	// worker is free first.
	var wg sync.WaitGroup
	var placementsTaken atomic.Bool
	placements := func() {
		if placementsTaken.CompareAndSwap(false, true) {
			l.loadPlacements()
		}
	}
	wg.Go(func() {
		l.loadCampaigns()
		l.loadPredictions()
		placements()
	})
	wg.Go(func() {
		l.loadCreatives()
		placements()
	})
	l.loadExperiments()
	wg.Wait()
	l.checkCreativeRefs()

	if err := mergeProblems(l.probs[:]...); err != nil {
		return nil, err
	}
	inv := &Inventory{
		Campaigns:      l.campaigns,
		Creatives:      l.creatives,
		Placements:     l.placements,
		Predictions:    l.preds,
		Experiments:    l.experiments,
		EndedCampaigns: l.ended,
	}
	for _, in := range l.inputs {
		if in != nil {
			inv.Inputs = append(inv.Inputs, *in)
		}
	}
	inv.indexPredictions()
	return inv, nil
}

// loader holds the state of one Load. Fields are owned by the goroutine
// that loads their file until wg.Wait.
type loader struct {
	dir    string
	opts   Options
	now    time.Time
	progMu sync.Mutex

	probs     [numFiles]*collector
	inputs    [numFiles]*InputFile
	malformed [numFiles]bool // some line was dropped as unreadable

	campaigns  []Campaign
	campLines  []int32
	campFacts  []campFact
	ctryPool   []uint16 // campFact.countries* index into it
	ended      int
	creatives  []Creative
	crLines    []int32
	placements []Placement
	plLines    []int32
	preds      []PredictionRow
	predLines  []int32

	experiments Experiments
}

// campFact is what the prediction checks need of a campaign.
type campFact struct {
	ctryOff uint32
	ctryLen uint16
	osMask  uint8
}

func (l *loader) progress(phase string, n int) {
	if l.opts.Progress == nil {
		return
	}
	l.progMu.Lock()
	defer l.progMu.Unlock()
	l.opts.Progress(phase, n)
}

// hashReader hashes and counts every byte read through it.
type hashReader struct {
	r io.Reader
	h *xxhash.Digest
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	_, _ = h.h.Write(p[:n]) // never fails
	h.n += int64(n)
	return n, err
}

func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// openInput opens one input file, reporting a missing or unreadable file
// as a whole-file problem.
func (l *loader) openInput(fi int) (*os.File, bool) {
	f, err := os.Open(filepath.Join(l.dir, Files[fi]))
	if err == nil {
		var st fs.FileInfo
		if st, err = f.Stat(); err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file (%s)", st.Mode().Type())
		}
		if err != nil {
			f.Close()
		}
	}
	switch {
	case err == nil:
		return f, true
	case errors.Is(err, fs.ErrNotExist):
		l.probs[fi].add(0, "required file is missing")
	default:
		l.probs[fi].add(0, "cannot read: "+err.Error())
	}
	return nil, false
}

// lineReader yields the physical lines of a stream through a small
// bufio buffer. A line that does not fit the buffer is gathered in long,
// but only up to max bytes: past that, the rest is read and discarded, so
// memory stays bounded by max whatever the input.
type lineReader struct {
	br   *bufio.Reader
	long []byte
	max  int
}

const readBufferSize = 128 << 10

// next returns the next line including its '\n' (the last line may lack
// it). For a line longer than max it returns no bytes and the line's
// length without its '\n' in tooLong. err is io.EOF after the last line.
func (r *lineReader) next() (line []byte, tooLong int64, err error) {
	line, err = r.br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, 0, err
	}
	r.long = append(r.long[:0], line...)
	n := int64(len(line))
	for err == bufio.ErrBufferFull {
		line, err = r.br.ReadSlice('\n')
		n += int64(len(line))
		if len(r.long) <= r.max {
			r.long = append(r.long, line...)
		}
	}
	if len(line) > 0 && line[len(line)-1] == '\n' {
		n--
	}
	if n > int64(r.max) {
		return nil, n, err
	}
	return r.long, 0, err
}

// readLines streams a JSONL file, calling each for every non-blank line
// (1-based physical line number; the slice, without its line end, is
// valid only during the call). A line over MaxLineBytes is reported and
// skipped.
func (l *loader) readLines(fi int, phase string, each func(n int, line []byte)) {
	f, ok := l.openInput(fi)
	if !ok {
		l.progress(phase, 0)
		return
	}
	defer f.Close()
	c := l.probs[fi]
	hr := &hashReader{r: f, h: xxhash.New()}
	lr := &lineReader{br: bufio.NewReaderSize(hr, readBufferSize), max: MaxLineBytes}
	lineNo, records := 0, 0
	for {
		line, tooLong, err := lr.next()
		if len(line) > 0 || tooLong > 0 {
			lineNo++
		}
		switch {
		case tooLong > 0:
			c.addf(lineNo, "line too long: %d bytes, the limit is %d (one JSON object per line)", tooLong, MaxLineBytes)
			l.malformed[fi] = true
		case !blank(line):
			// Without its line end, so columns in messages stop at the text.
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
			each(lineNo, line)
			records++
			if records%progressEvery == 0 {
				l.progress(phase, records)
			}
		}
		if err != nil {
			if err != io.EOF {
				c.addf(0, "read error after line %d: %v", lineNo, err)
			}
			break
		}
	}
	l.inputs[fi] = &InputFile{Name: Files[fi], Size: hr.n, XXHash64: hr.h.Sum64()}
	l.progress(phase, records)
}

// report adds a decoder's messages for line n.
func (l *loader) report(fi, n int, ms []string) {
	for _, m := range ms {
		l.probs[fi].add(n, m)
	}
}

// estimate returns a capacity for a file of size bytes whose first lines
// averaged avg bytes: sizing the big slices once avoids append's doubling
// (transiently 3x the memory of the final slice).
func estimate(size int64, avg float64) int {
	if avg <= 0 {
		return 0
	}
	return int(float64(size)/avg*1.05) + 64
}

func fileSize(dir, name string) int64 {
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		return 0
	}
	return st.Size()
}

// grow reserves capacity once, after the first 1000 records.
func grow[T any](s []T, records int, bytesSoFar int64, size int64) []T {
	if records != 1000 {
		return s
	}
	n := estimate(size, float64(bytesSoFar)/float64(records))
	if n > cap(s) {
		s = slices.Grow(s, n-len(s))
	}
	return s
}

func (l *loader) loadCampaigns() {
	d := newLineDecoder()
	var ms msgs
	var facts campaignFacts
	segments := map[string]struct{}{}
	var segOverflowLine int
	var segOverflowName string
	const segCountCap = 1 << 16
	size := fileSize(l.dir, CampaignsFile)
	var bytesRead int64
	l.readLines(fileCampaigns, "campaigns", func(n int, line []byte) {
		bytesRead += int64(len(line))
		var c Campaign
		present, ok := d.campaign(line, &c)
		l.report(fileCampaigns, n, d.msgs)
		if !ok {
			l.malformed[fileCampaigns] = true
			return
		}
		ms = ms[:0]
		validateCampaign(&c, present, &facts, &ms)
		ms = d.unshadowed(ms)
		l.report(fileCampaigns, n, ms)
		if checkID(c.ID) != "" {
			return // cannot be referenced; already reported
		}
		for _, s := range c.Targeting.Segments {
			if _, ok := segments[s]; ok || checkLabel(s) != "" || len(segments) >= segCountCap {
				continue
			}
			segments[s] = struct{}{}
			if len(segments) == snapshot.MaxSegments+1 {
				segOverflowLine, segOverflowName = n, s
			}
		}
		if !facts.end.IsZero() && !facts.end.After(l.now) {
			l.ended++
		}
		slices.Sort(facts.countries)
		l.campFacts = append(l.campFacts, campFact{ctryOff: uint32(len(l.ctryPool)), ctryLen: uint16(len(facts.countries)), osMask: facts.osMask})
		l.ctryPool = append(l.ctryPool, facts.countries...)
		l.campaigns = grow(l.campaigns, len(l.campaigns), bytesRead, size)
		l.campaigns = append(l.campaigns, c)
		l.campLines = append(l.campLines, int32(n))
	})
	if segOverflowLine > 0 {
		count := fmt.Sprint(len(segments))
		if len(segments) >= segCountCap {
			count = "at least " + count
		}
		l.probs[fileCampaigns].addf(segOverflowLine, "targeting.segments: segment %q is distinct segment number %d; at most %d distinct segments are allowed across all campaigns (found %s)",
			segOverflowName, snapshot.MaxSegments+1, snapshot.MaxSegments, count)
	}
	perm := sortPerm(len(l.campaigns), func(i int) string { return l.campaigns[i].ID })
	if perm != nil {
		permute(l.campaigns, perm)
		permute(l.campLines, perm)
		permute(l.campFacts, perm)
	}
	l.reportDuplicates(fileCampaigns, "campaign", len(l.campaigns), func(i int) string { return l.campaigns[i].ID }, l.campLines)
}

func (l *loader) loadCreatives() {
	loadRecords(l, recordFile[Creative]{
		file: fileCreatives, name: CreativesFile, phase: "creatives", kind: "creative",
		decode: (*lineDecoder).creative, validate: validateCreative, id: func(c *Creative) string { return c.ID },
	}, &l.creatives, &l.crLines)
}

func (l *loader) loadPlacements() {
	loadRecords(l, recordFile[Placement]{
		file: filePlacements, name: PlacementsFile, phase: "placements", kind: "placement",
		decode: (*lineDecoder).placement, validate: validatePlacement, id: func(p *Placement) string { return p.ID },
	}, &l.placements, &l.plLines)
}

// recordFile describes a JSONL file of records keyed by a unique id.
type recordFile[T any] struct {
	file        int    // file* index
	name        string // file name, for the size estimate
	phase, kind string // progress phase ("creatives"), record kind in messages ("creative")
	decode      func(d *lineDecoder, line []byte, r *T) (present uint32, ok bool)
	validate    func(r *T, present uint32, out *msgs)
	id          func(r *T) string
}

// loadRecords reads one such file: decode and validate each line, keep the
// records whose id is usable (with their lines), then sort them by id and
// report repeated ids.
func loadRecords[T any](l *loader, rf recordFile[T], recs *[]T, lines *[]int32) {
	d := newLineDecoder()
	var ms msgs
	size := fileSize(l.dir, rf.name)
	var bytesRead int64
	var r, zero T // one record reused: passed through rf.decode it would escape per line
	l.readLines(rf.file, rf.phase, func(n int, line []byte) {
		bytesRead += int64(len(line))
		r = zero
		present, ok := rf.decode(d, line, &r)
		l.report(rf.file, n, d.msgs)
		if !ok {
			l.malformed[rf.file] = true
			return
		}
		ms = ms[:0]
		rf.validate(&r, present, &ms)
		ms = d.unshadowed(ms)
		l.report(rf.file, n, ms)
		if checkID(rf.id(&r)) != "" {
			return
		}
		*recs = grow(*recs, len(*recs), bytesRead, size)
		*recs = append(*recs, r)
		*lines = append(*lines, int32(n))
	})
	all := *recs
	id := func(i int) string { return rf.id(&all[i]) }
	if perm := sortPerm(len(all), id); perm != nil {
		permute(all, perm)
		permute(*lines, perm)
	}
	l.reportDuplicates(rf.file, rf.kind, len(all), id, *lines)
}

// loadPredictions runs after loadCampaigns (same goroutine): it resolves
// campaign ids and checks targeting as it reads.
func (l *loader) loadPredictions() {
	d := newLineDecoder()
	var ms msgs
	var p predLine
	byID := make(map[string]int32, len(l.campaigns))
	for i := len(l.campaigns) - 1; i >= 0; i-- { // the first of duplicates wins
		byID[l.campaigns[i].ID] = int32(i)
	}
	lastID, lastIdx := []byte(nil), -1
	size := fileSize(l.dir, PredictionsFile)
	var bytesRead int64
	l.readLines(filePredictions, "predictions", func(n int, line []byte) {
		bytesRead += int64(len(line))
		present, ok := d.prediction(line, &p)
		l.report(filePredictions, n, d.msgs)
		if !ok {
			l.malformed[filePredictions] = true
			return
		}
		ms = ms[:0]
		validatePrediction(&p, present, &ms)
		ms = d.unshadowed(ms)
		l.report(filePredictions, n, ms)
		if d.bad || len(ms) > 0 {
			return
		}
		idx := lastIdx
		if lastIdx < 0 || string(lastID) != string(p.campaignID) {
			idx = -1
			if i, ok := byID[string(p.campaignID)]; ok {
				idx = int(i)
			}
			lastID, lastIdx = append(lastID[:0], p.campaignID...), idx
		}
		if idx < 0 {
			id := string(p.campaignID)
			if m := checkID(id); m != "" {
				l.probs[filePredictions].add(n, "campaign_id: "+m)
			} else {
				l.probs[filePredictions].addf(n, "campaign_id: campaign %q not found in %s%s", id, CampaignsFile, l.malformedHint(fileCampaigns))
			}
			return
		}
		country, _ := countryIndex(p.country)
		os, _ := snapshot.ParseOS(p.os)
		f := l.campFacts[idx]
		countries := l.ctryPool[f.ctryOff : f.ctryOff+uint32(f.ctryLen)]
		if _, found := slices.BinarySearch(countries, country); !found {
			l.probs[filePredictions].addf(n, "country: campaign %q does not target %s (it targets %s); predictions are only for targeted countries",
				l.campaigns[idx].ID, p.country, countryList(countries))
			return
		}
		if f.osMask&(1<<os) == 0 {
			l.probs[filePredictions].addf(n, "os: campaign %q does not target %s; predictions are only for targeted os", l.campaigns[idx].ID, p.os)
			return
		}
		l.preds = grow(l.preds, len(l.preds), bytesRead, size)
		l.preds = append(l.preds, PredictionRow{
			Campaign: int32(idx), Country: country, OS: uint8(os),
			CTR: float32(p.ctr), InstallRate: float32(p.ir),
		})
		l.predLines = append(l.predLines, int32(n))
	})
	rows := l.preds
	if !slices.IsSortedFunc(rows, comparePred) {
		// Sort packed keys (campaign<<24 | country<<8 | os, then the
		// original index, which is line order) rather than chase rows.
		ks := make([]keyed, len(rows))
		for i, r := range rows {
			ks[i] = keyed{uint64(r.Campaign)<<24 | uint64(r.Country)<<8 | uint64(r.OS), int32(i)}
		}
		perm := sortKeyed(ks, nil)
		permute(rows, perm)
		permute(l.predLines, perm)
	}
	for i := 1; i < len(rows); i++ {
		if comparePred(rows[i-1], rows[i]) == 0 {
			first := i - 1
			for first > 0 && comparePred(rows[first-1], rows[i]) == 0 {
				first--
			}
			r := rows[i]
			l.probs[filePredictions].addf(int(l.predLines[i]), "duplicate prediction for campaign %q, country %s, os %s (first at line %d)",
				l.campaigns[r.Campaign].ID, snapshot.CountryCode(r.Country), snapshot.OS(r.OS), l.predLines[first])
		}
	}
	l.predLines = nil
}

func comparePred(a, b PredictionRow) int {
	switch {
	case a.Campaign != b.Campaign:
		return int(a.Campaign - b.Campaign)
	case a.Country != b.Country:
		return int(a.Country) - int(b.Country)
	}
	return int(a.OS) - int(b.OS)
}

func countryList(cs []uint16) string {
	const max = 8
	var b strings.Builder
	for i, c := range cs {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(cs)-max)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(snapshot.CountryCode(c))
	}
	if len(cs) == 0 {
		return "no valid country"
	}
	return b.String()
}

func (l *loader) malformedHint(fi int) string {
	if l.malformed[fi] {
		return fmt.Sprintf(" (%s has unreadable lines; it may be on one of them)", Files[fi])
	}
	return ""
}

// checkCreativeRefs resolves every campaign's creative ids (after both
// files are loaded) and makes each CreativeIDs element share the
// Creative.ID string, so the campaign's copies can be collected. Two
// goroutines split the campaigns.
func (l *loader) checkCreativeRefs() {
	type dangling struct{ campaign, ref int32 } // formatted later: the collector may not keep it
	var found [2][]dangling
	half := len(l.campaigns) / 2
	check := func(part, from, to int) {
		for i := from; i < to; i++ {
			c := &l.campaigns[i]
			for j, id := range c.CreativeIDs {
				k, ok := slices.BinarySearchFunc(l.creatives, id, func(c Creative, id string) int { return strings.Compare(c.ID, id) })
				if ok {
					c.CreativeIDs[j] = l.creatives[k].ID
					continue
				}
				if checkID(id) == "" {
					found[part] = append(found[part], dangling{int32(i), int32(j)})
				}
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { check(1, half, len(l.campaigns)) })
	check(0, 0, half)
	wg.Wait()
	hint := l.malformedHint(fileCreatives)
	for _, part := range found {
		for _, d := range part {
			l.probs[fileCampaigns].addf(int(l.campLines[d.campaign]), "creative_ids[%d]: creative %q not found in %s%s",
				d.ref, l.campaigns[d.campaign].CreativeIDs[d.ref], CreativesFile, hint)
		}
	}
	l.progress("references", len(l.campaigns))
	l.campLines, l.crLines, l.plLines, l.campFacts, l.ctryPool = nil, nil, nil, nil, nil
}

func (l *loader) loadExperiments() {
	defer func() { l.progress("experiments", len(l.experiments.Tests)) }()
	f, ok := l.openInput(fileExperiments)
	if !ok {
		return
	}
	defer f.Close()
	c := l.probs[fileExperiments]
	hr := &hashReader{r: f, h: xxhash.New()}
	buf, err := io.ReadAll(io.LimitReader(hr, maxExperimentsBytes+1))
	if err == nil && len(buf) > maxExperimentsBytes {
		_, err = io.Copy(io.Discard, hr) // hash the rest for the manifest
		if err == nil {
			c.addf(0, "too large: %d bytes, the limit is %d", hr.n, maxExperimentsBytes)
		}
		buf = nil
	}
	if err != nil {
		c.add(0, "read error: "+err.Error())
		return
	}
	l.inputs[fileExperiments] = &InputFile{Name: ExperimentsFile, Size: hr.n, XXHash64: hr.h.Sum64()}
	if buf == nil {
		return
	}
	e, probs := decodeExperiments(buf, l.opts.Previous)
	for _, p := range probs {
		line := 0 // whole file
		if p.pos >= 0 {
			line = lineOf(buf, p.pos)
		}
		c.add(line, p.msg)
	}
	l.experiments = e
}

// sortPerm returns the permutation that sorts n records by id (ties by
// line), or nil when they already are. To keep compares off the string
// data (a cache miss each), it sorts 8-byte keys taken just after the
// longest prefix all ids share ("cr-000" in "cr-00012345"), and compares
// whole ids only when keys tie.
func sortPerm(n int, id func(int) string) []int32 {
	sorted := true
	for i := 1; i < n; i++ {
		if id(i-1) > id(i) {
			sorted = false
			break
		}
	}
	if sorted {
		return nil
	}
	lcp := id(0)
	for i := 1; i < n && lcp != ""; i++ {
		s := id(i)
		j := 0
		for j < len(lcp) && j < len(s) && lcp[j] == s[j] {
			j++
		}
		lcp = lcp[:j]
	}
	keys := make([]keyed, n)
	for i := range keys {
		s := id(i)[len(lcp):]
		var k uint64
		for j := range 8 {
			k <<= 8
			if j < len(s) {
				k |= uint64(s[j])
			}
		}
		keys[i] = keyed{k, int32(i)}
	}
	return sortKeyed(keys, func(a, b int32) int { return strings.Compare(id(int(a)), id(int(b))) })
}

// keyed is a sort key and the index of the record it stands for.
type keyed struct {
	key uint64
	idx int32
}

// sortKeyed sorts by key, then by tie (if any), then by index (records
// are appended in line order, so the first occurrence comes first), and
// returns the indexes in order.
func sortKeyed(ks []keyed, tie func(a, b int32) int) []int32 {
	slices.SortFunc(ks, func(a, b keyed) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		if tie != nil {
			if c := tie(a.idx, b.idx); c != 0 {
				return c
			}
		}
		return int(a.idx - b.idx)
	})
	perm := make([]int32, len(ks))
	for i, k := range ks {
		perm[i] = k.idx
	}
	return perm
}

// permute reorders s in place so that new s[i] = old s[perm[i]], following
// cycles so no second copy of s is needed.
func permute[T any](s []T, perm []int32) {
	done := make([]bool, len(s))
	for i := range s {
		if done[i] {
			continue
		}
		tmp := s[i]
		j := i
		for {
			done[j] = true
			k := int(perm[j])
			if k == i {
				break
			}
			s[j] = s[k]
			j = k
		}
		s[j] = tmp
	}
}

// reportDuplicates reports each repeated id of a sorted file at its line,
// naming the line of the first occurrence.
func (l *loader) reportDuplicates(fi int, kind string, n int, id func(int) string, lines []int32) {
	first := 0
	for i := 1; i < n; i++ {
		if id(i) != id(first) {
			first = i
			continue
		}
		l.probs[fi].addf(int(lines[i]), "id: duplicate %s id %q (first at line %d)", kind, id(i), lines[first])
	}
}

// indexPredictions builds predStart.
func (inv *Inventory) indexPredictions() {
	inv.predStart = make([]int32, len(inv.Campaigns)+1)
	j := 0
	for i := range inv.Campaigns {
		inv.predStart[i] = int32(j)
		for j < len(inv.Predictions) && int(inv.Predictions[j].Campaign) == i {
			j++
		}
	}
	inv.predStart[len(inv.Campaigns)] = int32(j)
}

func searchID(n int, id func(int) string, want string) (int, bool) {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if id(m) < want {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < n && id(lo) == want {
		return lo, true
	}
	return -1, false
}

// CampaignIndex returns the index of the campaign with this id (-1, false
// if there is none). Likewise CreativeIndex and PlacementIndex.
func (inv *Inventory) CampaignIndex(id string) (int, bool) {
	return searchID(len(inv.Campaigns), func(i int) string { return inv.Campaigns[i].ID }, id)
}

// CreativeIndex returns the index of the creative with this id.
func (inv *Inventory) CreativeIndex(id string) (int, bool) {
	return searchID(len(inv.Creatives), func(i int) string { return inv.Creatives[i].ID }, id)
}

// PlacementIndex returns the index of the placement with this id.
func (inv *Inventory) PlacementIndex(id string) (int, bool) {
	return searchID(len(inv.Placements), func(i int) string { return inv.Placements[i].ID }, id)
}

// CampaignPredictions returns campaign i's rows of Predictions (sorted by
// country, then OS); empty when it has none.
func (inv *Inventory) CampaignPredictions(campaign int) []PredictionRow {
	if campaign < 0 || campaign >= len(inv.Campaigns) {
		return nil
	}
	if len(inv.predStart) == len(inv.Campaigns)+1 {
		return inv.Predictions[inv.predStart[campaign]:inv.predStart[campaign+1]]
	}
	// Built by hand rather than by Load: search.
	lo, _ := slices.BinarySearchFunc(inv.Predictions, int32(campaign), func(r PredictionRow, c int32) int { return int(r.Campaign - c) })
	hi := lo
	for hi < len(inv.Predictions) && inv.Predictions[hi].Campaign == int32(campaign) {
		hi++
	}
	return inv.Predictions[lo:hi]
}

// Prediction returns the predicted CTR and install rate of a campaign in a
// country and OS, or DefaultCTR and DefaultInstallRate when
// predictions.jsonl has no row for them.
func (inv *Inventory) Prediction(campaign int, country uint16, os snapshot.OS) (ctr, ir float64) {
	rows := inv.CampaignPredictions(campaign)
	i, ok := slices.BinarySearchFunc(rows, PredictionRow{Country: country, OS: uint8(os)}, func(a, b PredictionRow) int {
		if a.Country != b.Country {
			return int(a.Country) - int(b.Country)
		}
		return int(a.OS) - int(b.OS)
	})
	if !ok {
		return DefaultCTR, DefaultInstallRate
	}
	return float64(rows[i].CTR), float64(rows[i].InstallRate)
}
