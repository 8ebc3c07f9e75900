package snaptool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/snapshot"
)

// ErrVerify is matched (errors.Is) by every error Verify returns because the
// file or its manifest is wrong, as opposed to operational errors such as a
// missing file or a failed read.
var ErrVerify = errors.New("snapshot verification failed")

// VerifyError reports what Verify found wrong. It matches ErrVerify and,
// through Err, the snapshot package's sentinel (snapshot.ErrChecksum, ...)
// when Open refused the file.
type VerifyError struct {
	Path string
	// Section names the first part of the file whose checksum failed
	// ("header", "section table", "footer", or a section name such as
	// "campaigns"); empty when no checksum failed.
	Section string
	// Failures lists every failed check, one line each.
	Failures []string
	// Err is the error snapshot.Open returned, nil when Open succeeded and
	// a later check (references, manifest) failed.
	Err error
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify %s: ", e.Path)
	if e.Section != "" {
		fmt.Fprintf(&b, "%s failed its checksum: ", e.Section)
	}
	const show = 3
	b.WriteString(strings.Join(e.Failures[:min(show, len(e.Failures))], "; "))
	if len(e.Failures) > show {
		fmt.Fprintf(&b, "; and %d more", len(e.Failures)-show)
	}
	return b.String()
}

// Unwrap lets errors.Is match ErrVerify and the underlying snapshot error.
func (e *VerifyError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrVerify, e.Err}
	}
	return []error{ErrVerify}
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// NoManifest skips looking for a manifest beside the file when none is
	// given.
	NoManifest bool
	// MaxProblems caps the structural problems reported; 0 means
	// DefaultMaxProblems.
	MaxProblems int
	// JSON writes a VerifyReport as JSON instead of text.
	JSON bool
}

// VerifyReport is what Verify prints; with VerifyOptions.JSON it is written
// as is.
type VerifyReport struct {
	Path      string         `json:"path"`
	OK        bool           `json:"ok"`
	Version   string         `json:"version,omitempty"`
	Size      int64          `json:"size"`
	Error     string         `json:"error,omitempty"` // snapshot.Open's refusal
	Sections  []SectionCheck `json:"sections"`
	VerifyNS  int64          `json:"verify_ns"` // Open: framing and every section checksum
	VerifyGBs float64        `json:"verify_gb_per_s"`
	// References are CheckReferences' problems (empty when clean or when
	// Open failed); ReferencesChecked says whether it ran.
	ReferencesChecked bool            `json:"references_checked"`
	ReferencesNS      int64           `json:"references_ns"`
	References        []string        `json:"references"`
	Manifest          *ManifestReport `json:"manifest,omitempty"`
	Failures          []string        `json:"failures"`

	err error // the *VerifyError, nil when OK
}

// SectionCheck is one checksummed part of the file.
type SectionCheck struct {
	Name     string `json:"name"`
	Offset   uint64 `json:"offset"`
	Bytes    uint64 `json:"bytes"`
	XXHash64 string `json:"xxhash64"`           // stored
	Computed string `json:"computed,omitempty"` // set when it differs
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"`
}

// ManifestReport compares the file with its manifest.
type ManifestReport struct {
	Path   string          `json:"path"`
	How    string          `json:"how"` // "given" or "found beside the file"
	Fields []ManifestField `json:"fields"`
	Error  string          `json:"error,omitempty"` // the manifest itself is unreadable or invalid
	// Note explains a manifest.json beside the file that was skipped.
	Note string `json:"note,omitempty"`
}

// ManifestField is one compared manifest field.
type ManifestField struct {
	Field    string `json:"field"`
	Manifest string `json:"manifest"`
	File     string `json:"file"`
	OK       bool   `json:"ok"`
}

// Verify checks the snapshot at path: framing and every checksum (through
// snapshot.Open; on a refusal every section is re-hashed to say which
// failed), the deep structure (CheckReferences) and, when a manifest is
// given or found beside the file (<version>.manifest.json, else
// manifest.json if it describes this file), the size, whole-file xxhash64,
// version and section checksums it records.
//
// Anything wrong with the file or manifest returns a *VerifyError (match
// with errors.Is(err, ErrVerify)); other errors are operational.
func Verify(w io.Writer, path, manifestPath string, opts VerifyOptions) error {
	rep, err := BuildVerifyReport(path, manifestPath, opts)
	if err != nil {
		return err
	}
	if opts.JSON {
		if err := writeJSON(w, rep); err != nil {
			return err
		}
	} else if err := rep.writeText(w); err != nil {
		return err
	}
	return rep.err
}

// BuildVerifyReport runs Verify's checks without printing. The returned
// error is only for operational failures; check VerifyReport.OK (or
// VerifyReport.Err) for the verdict.
func BuildVerifyReport(path, manifestPath string, opts VerifyOptions) (*VerifyReport, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a snapshot file", path)
	}
	rep := &VerifyReport{Path: path, Size: st.Size(), Sections: []SectionCheck{}, References: []string{}, Failures: []string{}}
	verr := &VerifyError{Path: path}

	start := time.Now()
	r, openErr := snapshot.Open(path)
	elapsed := time.Since(start)
	var fileHash uint64
	if openErr != nil {
		if !isSnapshotError(openErr) {
			return nil, openErr
		}
		rep.Error = openErr.Error()
		verr.Err = openErr
		checks, herr := hashSections(path)
		if herr != nil {
			return nil, herr
		}
		rep.Sections = checks
		for _, c := range checks {
			if !c.OK {
				if verr.Section == "" && c.Computed != "" {
					verr.Section = c.Name
				}
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %s", c.Name, c.Problem))
			}
		}
		if len(rep.Failures) == 0 { // a refusal the re-hash did not reproduce
			rep.Failures = append(rep.Failures, openErr.Error())
		}
		if manifestPath != "" || !opts.NoManifest {
			if fileHash, err = snapshot.HashFile(path); err != nil {
				return nil, err
			}
		}
	} else {
		defer r.Close()
		rep.Version = r.Header().Version
		rep.VerifyNS = elapsed.Nanoseconds()
		rep.VerifyGBs = float64(r.Size()) / max(elapsed.Seconds(), 1e-9) / 1e9
		for _, s := range r.Sections() {
			rep.Sections = append(rep.Sections, SectionCheck{Name: s.Name(), Offset: s.Offset, Bytes: s.Length, XXHash64: snapshot.Hex16(s.XXHash64), OK: true})
		}
		rep.ReferencesChecked = true
		start = time.Now()
		rep.References = checkReferences(r, opts.MaxProblems)
		rep.ReferencesNS = time.Since(start).Nanoseconds()
		for _, p := range rep.References {
			rep.Failures = append(rep.Failures, "structure: "+p)
		}
		fileHash = xxhash.Sum64(r.Bytes())
	}

	if manifestPath != "" || !opts.NoManifest {
		mr, err := compareManifest(path, manifestPath, rep, r, fileHash)
		if err != nil {
			return nil, err
		}
		rep.Manifest = mr
		if mr != nil {
			if mr.Error != "" {
				rep.Failures = append(rep.Failures, "manifest "+mr.Path+": "+mr.Error)
			}
			for _, f := range mr.Fields {
				if !f.OK {
					rep.Failures = append(rep.Failures, fmt.Sprintf("manifest %s: %s is %s in the manifest, %s in the file", mr.Path, f.Field, f.Manifest, f.File))
				}
			}
		}
	}
	rep.OK = len(rep.Failures) == 0
	if !rep.OK {
		verr.Failures = rep.Failures
		rep.err = verr
	}
	return rep, nil
}

// Err is the *VerifyError for a failed report, nil for a clean one.
func (rep *VerifyReport) Err() error { return rep.err }

// isSnapshotError reports whether err is snapshot.Open refusing the content
// (as opposed to an I/O failure).
func isSnapshotError(err error) bool {
	for _, e := range []error{snapshot.ErrEmpty, snapshot.ErrNotSnapshot, snapshot.ErrUnsupportedVersion,
		snapshot.ErrTruncated, snapshot.ErrChecksum, snapshot.ErrCorrupt} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// hashSections re-reads a file snapshot.Open refused and checks each part
// on its own, so the report names every part that fails rather than the
// first. It reads with bounds checks and never trusts the table.
func hashSections(path string) ([]SectionCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := uint64(st.Size())
	buf := make([]byte, 1<<20)
	hashRange := func(off, n uint64) (uint64, error) {
		d := xxhash.New()
		_, err := io.CopyBuffer(d, io.NewSectionReader(f, int64(off), int64(n)), buf)
		return d.Sum64(), err
	}
	var out []SectionCheck

	hdr := make([]byte, snapshot.HeaderSize)
	if size < snapshot.HeaderSize {
		return append(out, SectionCheck{Name: "header", Problem: fmt.Sprintf("file is %d bytes, shorter than the %d-byte header", size, snapshot.HeaderSize)}), nil
	}
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, err
	}
	hc := SectionCheck{Name: "header", Bytes: snapshot.HeaderSize, XXHash64: snapshot.Hex16(le64(hdr[120:])), OK: true}
	switch {
	case string(hdr[:8]) != snapshot.HeaderMagic:
		hc.OK, hc.Problem = false, "bad magic: not an adedge snapshot"
	case le32(hdr[8:]) != snapshot.FormatVersion:
		hc.OK, hc.Problem = false, fmt.Sprintf("format version %d, this tool reads %d", le32(hdr[8:]), snapshot.FormatVersion)
	default:
		if got := xxhash.Sum64(hdr[:120]); got != le64(hdr[120:]) {
			hc.OK, hc.Computed = false, snapshot.Hex16(got)
			hc.Problem = fmt.Sprintf("checksum mismatch: stored %s, computed %s", hc.XXHash64, hc.Computed)
		}
	}
	out = append(out, hc)

	foot := make([]byte, snapshot.FooterSize)
	if size < snapshot.HeaderSize+snapshot.FooterSize {
		return append(out, SectionCheck{Name: "footer", Problem: "file too short for a footer"}), nil
	}
	if _, err := f.ReadAt(foot, int64(size-snapshot.FooterSize)); err != nil {
		return nil, err
	}
	fc := SectionCheck{Name: "footer", Offset: size - snapshot.FooterSize, Bytes: snapshot.FooterSize, OK: true}
	tableOff, n := le64(foot[0:]), uint64(le32(foot[8:]))
	switch {
	case string(foot[32:]) != snapshot.FooterMagic:
		fc.OK, fc.Problem = false, "no footer magic at the end: truncated or extended"
	case le64(foot[24:]) != size:
		fc.OK, fc.Problem = false, fmt.Sprintf("footer records %d bytes, file has %d: truncated or extended", le64(foot[24:]), size)
	case n > snapshot.MaxSections:
		fc.OK, fc.Problem = false, fmt.Sprintf("%d sections, at most %d allowed", n, snapshot.MaxSections)
	case tableOff < snapshot.HeaderSize || tableOff+n*snapshot.TableEntrySize != size-snapshot.FooterSize:
		fc.OK, fc.Problem = false, "section table does not end at the footer"
	}
	out = append(out, fc)
	if !fc.OK {
		return out, nil
	}

	table := make([]byte, n*snapshot.TableEntrySize)
	if _, err := f.ReadAt(table, int64(tableOff)); err != nil {
		return nil, err
	}
	tc := SectionCheck{Name: "section table", Offset: tableOff, Bytes: uint64(len(table)), XXHash64: snapshot.Hex16(le64(foot[16:])), OK: true}
	if got := xxhash.Sum64(table); got != le64(foot[16:]) {
		tc.OK, tc.Computed = false, snapshot.Hex16(got)
		tc.Problem = fmt.Sprintf("checksum mismatch: stored %s, computed %s", tc.XXHash64, tc.Computed)
	}
	out = append(out, tc)
	if !tc.OK {
		return out, nil // entries are not to be trusted
	}
	for i := uint64(0); i < n; i++ {
		e := table[i*snapshot.TableEntrySize:]
		s := SectionCheck{Name: snapshot.SectionName(le32(e[0:])), Offset: le64(e[8:]), Bytes: le64(e[16:]), XXHash64: snapshot.Hex16(le64(e[32:])), OK: true}
		if s.Name == "unknown" {
			s.Name = fmt.Sprintf("unknown section id %d", le32(e[0:]))
		}
		if s.Offset < snapshot.HeaderSize || s.Offset > tableOff || s.Bytes > tableOff-s.Offset {
			s.OK, s.Problem = false, fmt.Sprintf("lies outside the data area at %d+%d", s.Offset, s.Bytes)
		} else {
			got, err := hashRange(s.Offset, s.Bytes)
			if err != nil {
				return nil, err
			}
			if got != le64(e[32:]) {
				s.OK, s.Computed = false, snapshot.Hex16(got)
				s.Problem = fmt.Sprintf("checksum mismatch: stored %s, computed %s", s.XXHash64, s.Computed)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// compareManifest resolves the manifest (given, or found beside path) and
// compares it with the file. It returns nil when no manifest was given or
// found. r is nil when Open refused the file.
func compareManifest(path, given string, rep *VerifyReport, r *snapshot.Reader, fileHash uint64) (*ManifestReport, error) {
	mr := &ManifestReport{Path: given, How: "given"}
	var m *snapshot.Manifest
	if given != "" {
		b, err := os.ReadFile(given)
		if err != nil {
			return nil, err
		}
		if m, err = parseManifestBytes(b); err != nil {
			mr.Error = err.Error()
			return mr, nil
		}
	} else {
		var note string
		var err error
		mr.Path, m, note, err = findManifest(path, rep.Version)
		if err != nil {
			mr.How = "found beside the file"
			mr.Error = err.Error()
			return mr, nil
		}
		if m == nil {
			if note == "" {
				return nil, nil
			}
			return &ManifestReport{How: "none", Note: note, Fields: []ManifestField{}}, nil
		}
		mr.How, mr.Note = "found beside the file", note
	}

	add := func(field, inManifest, inFile string) {
		mr.Fields = append(mr.Fields, ManifestField{Field: field, Manifest: inManifest, File: inFile, OK: inManifest == inFile})
	}
	add("size", fmt.Sprint(m.Size), fmt.Sprint(rep.Size))
	add("xxhash64", m.XXHash64, snapshot.Hex16(fileHash))
	if r != nil {
		h := r.Header()
		add("version", m.Version, h.Version)
		add("format_version", fmt.Sprint(m.FormatVersion), fmt.Sprint(h.FormatVersion))
		if m.ContentHash != "" {
			add("content_hash", m.ContentHash, snapshot.Hex16(h.ContentHash))
		}
		if len(m.Sections) > 0 {
			secs := r.Sections()
			if len(m.Sections) != len(secs) {
				add("sections", fmt.Sprintf("%d sections", len(m.Sections)), fmt.Sprintf("%d sections", len(secs)))
			} else {
				for i, ms := range m.Sections {
					s := secs[i]
					add("sections["+ms.Name+"]", fmt.Sprintf("%s %d bytes %s", ms.Name, ms.Bytes, ms.XXHash64),
						fmt.Sprintf("%s %d bytes %s", s.Name(), s.Length, snapshot.Hex16(s.XXHash64)))
				}
			}
		}
	} else {
		add("version", m.Version, strings.TrimSuffix(filepath.Base(path), ".snap")+" (file name)")
	}
	return mr, nil
}

// parseManifestBytes bounds and parses a manifest.
func parseManifestBytes(b []byte) (*snapshot.Manifest, error) {
	if len(b) > snapshot.MaxManifestBytes {
		return nil, fmt.Errorf("larger than %d bytes", snapshot.MaxManifestBytes)
	}
	return snapshot.ParseManifest(b)
}

// findManifest looks beside path for <stem>.manifest.json,
// <version>.manifest.json, then manifest.json; manifest.json is used only
// when it describes this file (it is the newest build, which may be another
// version), otherwise note says why it was skipped. A found but unreadable
// per-version manifest is an error.
func findManifest(path, version string) (string, *snapshot.Manifest, string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	stem := strings.TrimSuffix(base, ".snap")
	names := []string{stem + ".manifest.json"}
	if version != "" && version != stem && snapshot.ValidVersion(version) {
		names = append(names, version+".manifest.json")
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return p, nil, "", err
		}
		m, err := parseManifestBytes(b)
		return p, m, "", err
	}
	p := filepath.Join(dir, "manifest.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, "", nil
	}
	if err != nil {
		return p, nil, "", err
	}
	m, err := parseManifestBytes(b)
	if err != nil {
		return "", nil, fmt.Sprintf("%s skipped: unreadable (%v)", p, err), nil
	}
	if m.File != base && (version == "" || m.Version != version) {
		return "", nil, fmt.Sprintf("%s skipped: it describes %s, not %s", p, m.File, base), nil
	}
	return p, m, "", nil
}

func okWord(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAIL"
}

func (rep *VerifyReport) writeText(w io.Writer) error {
	tw := newTab(w)
	fmt.Fprintf(tw, "file\t%s\n", rep.Path)
	if rep.Version != "" {
		fmt.Fprintf(tw, "version\t%s\n", rep.Version)
	}
	fmt.Fprintf(tw, "size\t%d bytes (%s)\n", rep.Size, bytesHuman(uint64(max(rep.Size, 0))))
	if rep.Error != "" {
		fmt.Fprintf(tw, "open\tREFUSED: %s\n", rep.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nchecksums")
	tw = newTab(w)
	for _, s := range rep.Sections {
		detail := ""
		if s.Problem != "" {
			detail = s.Problem
		}
		fmt.Fprintf(tw, "  %s\t%s\txxhash64 %s\t%d bytes\t%s\n", s.Name, okWord(s.OK), s.XXHash64, s.Bytes, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Error == "" {
		fmt.Fprintf(w, "  all %d sections OK: %s verified in %s (%.2f GB/s)\n", len(rep.Sections), bytesHuman(uint64(rep.Size)),
			time.Duration(rep.VerifyNS).Round(time.Microsecond), rep.VerifyGBs)
	}
	if rep.ReferencesChecked {
		if len(rep.References) == 0 {
			fmt.Fprintf(w, "\nstructure: OK in %s (every reference in bounds, candidate lists consistent and sorted, placement index complete)\n",
				time.Duration(rep.ReferencesNS).Round(time.Microsecond))
		} else {
			fmt.Fprintf(w, "\nstructure: %d problems\n", len(rep.References))
			for _, p := range rep.References {
				fmt.Fprintf(w, "  %s\n", p)
			}
		}
	} else {
		fmt.Fprintln(w, "\nstructure: not checked (the file was refused)")
	}
	if m := rep.Manifest; m != nil {
		switch {
		case m.How == "none":
			fmt.Fprintf(w, "\nmanifest: none used (%s)\n", m.Note)
		default:
			fmt.Fprintf(w, "\nmanifest: %s (%s)\n", m.Path, m.How)
			if m.Note != "" {
				fmt.Fprintf(w, "  note: %s\n", m.Note)
			}
			if m.Error != "" {
				fmt.Fprintf(w, "  FAIL: %s\n", m.Error)
			}
			tw = newTab(w)
			for _, f := range m.Fields {
				if f.OK {
					fmt.Fprintf(tw, "  %s\tOK\t%s\n", f.Field, f.File)
				} else {
					fmt.Fprintf(tw, "  %s\tMISMATCH\tmanifest %s, file %s\n", f.Field, f.Manifest, f.File)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	} else {
		fmt.Fprintln(w, "\nmanifest: none given or found beside the file")
	}
	var buf bytes.Buffer
	if rep.OK {
		buf.WriteString("\nRESULT: OK\n")
	} else {
		fmt.Fprintf(&buf, "\nRESULT: FAILED (%d problems)\n", len(rep.Failures))
	}
	_, err := w.Write(buf.Bytes())
	return err
}
