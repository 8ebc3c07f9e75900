package snapshot

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
)

// Header is the identity of a snapshot, stored in its first 128 bytes.
type Header struct {
	FormatVersion uint32
	Created       int64  // unix seconds: the data time the builder chose
	ContentHash   uint64 // xxhash64 over the build inputs
	Version       string // "20261122T053000Z-1a2b3c4d"; the file is <Version>.snap
}

// SectionInfo describes one section as recorded in the section table.
type SectionInfo struct {
	ID         uint32
	RecordSize uint32
	Offset     uint64
	Length     uint64
	Count      uint64
	XXHash64   uint64
}

// Name is the section's name for logs and tools.
func (s SectionInfo) Name() string { return SectionName(s.ID) }

// Summary is what a finished Writer reports: what goes into manifest.json.
type Summary struct {
	Size     int64
	XXHash64 uint64 // of the whole file
	Sections []SectionInfo
}

// Writer streams a snapshot in one pass: header, sections in the order they
// are begun, section table, footer. It hashes as it writes, so the whole-file
// checksum costs no second read.
type Writer struct {
	bw       *bufio.Writer
	fileHash *xxhash.Digest
	secHash  *xxhash.Digest
	off      uint64
	sections []SectionInfo
	open     bool
	err      error
}

// NewWriter writes h's header to w and returns a Writer for the sections.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if len(h.Version) == 0 || len(h.Version) > MaxVersionLen {
		return nil, fmt.Errorf("snapshot: version %q must be 1..%d bytes", h.Version, MaxVersionLen)
	}
	sw := &Writer{bw: bufio.NewWriterSize(w, 1<<20), fileHash: xxhash.New(), secHash: xxhash.New()}
	var b [HeaderSize]byte
	copy(b[0:8], HeaderMagic)
	le.PutUint32(b[8:], FormatVersion)
	le.PutUint32(b[12:], HeaderSize)
	le.PutUint64(b[16:], uint64(h.Created))
	le.PutUint64(b[24:], h.ContentHash)
	copy(b[32:32+MaxVersionLen], h.Version)
	le.PutUint64(b[120:], xxhash.Sum64(b[:120]))
	sw.raw(b[:])
	return sw, sw.err
}

func (w *Writer) raw(p []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.bw.Write(p); err != nil {
		w.err = err
		return
	}
	_, _ = w.fileHash.Write(p)
	w.off += uint64(len(p))
}

var zeros [SectionAlign]byte

func (w *Writer) pad() {
	if r := w.off % SectionAlign; r != 0 {
		w.raw(zeros[:SectionAlign-r])
	}
}

// BeginSection starts section id; recordSize is 0 for a byte blob. Every
// section must be ended before the next begins.
func (w *Writer) BeginSection(id uint32, recordSize uint32) error {
	if w.err != nil {
		return w.err
	}
	if w.open {
		return errors.New("snapshot: BeginSection while another section is open")
	}
	for _, s := range w.sections {
		if s.ID == id {
			return fmt.Errorf("snapshot: section %s written twice", SectionName(id))
		}
	}
	if len(w.sections) >= MaxSections {
		return fmt.Errorf("snapshot: more than %d sections", MaxSections)
	}
	w.pad()
	w.secHash.Reset()
	w.sections = append(w.sections, SectionInfo{ID: id, RecordSize: recordSize, Offset: w.off})
	w.open = true
	return w.err
}

// Write appends bytes to the open section.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.open {
		return 0, errors.New("snapshot: Write outside a section")
	}
	w.raw(p)
	if w.err != nil {
		return 0, w.err
	}
	_, _ = w.secHash.Write(p)
	return len(p), nil
}

// EndSection closes the open section, checking it holds whole records.
func (w *Writer) EndSection() error {
	if w.err != nil {
		return w.err
	}
	if !w.open {
		return errors.New("snapshot: EndSection without BeginSection")
	}
	s := &w.sections[len(w.sections)-1]
	s.Length = w.off - s.Offset
	s.XXHash64 = w.secHash.Sum64()
	if s.RecordSize > 0 {
		if s.Length%uint64(s.RecordSize) != 0 {
			return fmt.Errorf("snapshot: section %s is %d bytes, not a multiple of its %d-byte records", SectionName(s.ID), s.Length, s.RecordSize)
		}
		s.Count = s.Length / uint64(s.RecordSize)
	}
	w.open = false
	return nil
}

// WriteSection writes a whole section from one buffer.
func (w *Writer) WriteSection(id, recordSize uint32, p []byte) error {
	if err := w.BeginSection(id, recordSize); err != nil {
		return err
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	return w.EndSection()
}

// Close writes the section table and footer and flushes. It does not close
// the underlying writer.
func (w *Writer) Close() (Summary, error) {
	if w.open {
		return Summary{}, errors.New("snapshot: Close with a section open")
	}
	w.pad()
	tableOff := w.off
	table := make([]byte, 0, len(w.sections)*TableEntrySize)
	for _, s := range w.sections {
		var e [TableEntrySize]byte
		le.PutUint32(e[0:], s.ID)
		le.PutUint32(e[4:], s.RecordSize)
		le.PutUint64(e[8:], s.Offset)
		le.PutUint64(e[16:], s.Length)
		le.PutUint64(e[24:], s.Count)
		le.PutUint64(e[32:], s.XXHash64)
		table = append(table, e[:]...)
	}
	w.raw(table)
	var f [FooterSize]byte
	le.PutUint64(f[0:], tableOff)
	le.PutUint32(f[8:], uint32(len(w.sections)))
	le.PutUint64(f[16:], xxhash.Sum64(table))
	le.PutUint64(f[24:], w.off+FooterSize)
	copy(f[32:], FooterMagic)
	w.raw(f[:])
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err != nil {
		return Summary{}, w.err
	}
	return Summary{Size: int64(w.off), XXHash64: w.fileHash.Sum64(), Sections: w.sections}, nil
}
