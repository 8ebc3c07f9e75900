package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/tmpfs"
)

func rec(i int) []byte {
	return []byte(fmt.Sprintf("record-%06d-%s", i, bytes.Repeat([]byte{'x'}, i%50)))
}

func readAll(t testing.TB, dir string, from Pos, limit func() Pos) ([][]byte, *Reader) {
	t.Helper()
	r := NewReader(dir, from, limit)
	var out [][]byte
	for {
		recs, err := r.Next(100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out, r
		}
		for _, x := range recs {
			out = append(out, append([]byte(nil), x.Payload...))
		}
	}
}

func TestAppendReadRotateReopen(t *testing.T) {
	dir := t.TempDir()
	l, rc0, err := Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if rc0.Segments != 0 || rc0.Records != 0 {
		t.Fatalf("fresh dir recovery %+v", rc0)
	}
	const n = 500
	for i := 0; i < n; i++ {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A live reader up to Head sees everything, in order.
	got, _ := readAll(t, dir, Pos{}, l.Head)
	if len(got) != n {
		t.Fatalf("live read %d records, want %d", len(got), n)
	}
	for i, g := range got {
		if !bytes.Equal(g, rec(i)) {
			t.Fatalf("record %d = %q", i, g)
		}
	}
	if st := l.Stats(); st.Segments < 5 {
		t.Fatalf("4 KiB segments: %d segments, want rotation", st.Segments)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(rec(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	var seen int
	l2, rec2, err := Open(dir, Options{OnRecord: func([]byte) { seen++ }})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if rec2.Records != n || seen != n || rec2.TornBytes != 0 || len(rec2.DamagedSpans) != 0 {
		t.Fatalf("reopen: %+v seen %d", rec2, seen)
	}
	if _, err := l2.Append(rec(n)); err != nil {
		t.Fatal(err)
	}
	got, _ = readAll(t, dir, Pos{}, l2.Head)
	if len(got) != n+1 || !bytes.Equal(got[n], rec(n)) {
		t.Fatalf("after reopen %d records", len(got))
	}
}

func TestResumeFromPosition(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, Options{SegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mid Pos
	for i := 0; i < 100; i++ {
		p, err := l.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 59 {
			mid = p
		}
	}
	got, _ := readAll(t, dir, mid, l.Head)
	if len(got) != 40 || !bytes.Equal(got[0], rec(60)) {
		t.Fatalf("resume from %+v: %d records, first %q", mid, len(got), got[0])
	}
}

// writeSegment makes a segment file from frames and raw garbage.
func segmentOf(parts ...[]byte) []byte {
	b := []byte(segHeader)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func frame(p []byte) []byte { return appendFrame(nil, p) }

func TestRecoveryCutsTornTailAndSkipsDamage(t *testing.T) {
	dir := t.TempDir()
	damaged := frame(rec(2))
	damaged[FrameHeader+3] ^= 0xff // payload bit flips: checksum fails
	torn := frame(rec(5))[:11]
	seg1 := segmentOf(frame(rec(0)), frame(rec(1)), damaged, frame(rec(3)), []byte("garbage!"), frame(rec(4)))
	seg2 := segmentOf(frame(rec(6)), torn)
	if err := os.WriteFile(filepath.Join(dir, segName(1)), seg1, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, segName(2)), seg2, 0o644); err != nil {
		t.Fatal(err)
	}
	// An offline reader (no Open yet) sees the same: damage skipped, torn counted.
	got, r := readAll(t, dir, Pos{}, nil)
	if len(got) != 5 || len(r.Damaged) != 2 || r.Torn != int64(len(torn)) {
		t.Fatalf("offline read: %d records, damaged %v, torn %d", len(got), r.Damaged, r.Torn)
	}
	l, rc, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if rc.Records != 5 || len(rc.DamagedSpans) != 2 || rc.TornBytes != int64(len(torn)) {
		t.Fatalf("recovery %+v", rc)
	}
	if rc.DamagedSpans[0].Len != int64(len(damaged)) || rc.DamagedSpans[1].Len != 8 {
		t.Fatalf("damaged spans %+v", rc.DamagedSpans)
	}
	fi, _ := os.Stat(filepath.Join(dir, segName(2)))
	if fi.Size() != int64(len(seg2)-len(torn)) {
		t.Fatalf("torn tail not cut: size %d", fi.Size())
	}
	want := [][]byte{rec(0), rec(1), rec(3), rec(4), rec(6), []byte("new")}
	if _, err := l.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	got, r = readAll(t, dir, Pos{}, l.Head)
	if len(got) != len(want) || r.Torn != 0 {
		t.Fatalf("after recovery: %d records torn %d", len(got), r.Torn)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d = %q want %q", i, got[i], want[i])
		}
	}
}

func TestBoundAndRelease(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, Options{SegmentBytes: 1024, MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var last Pos
	n := 0
	for ; n < 1000; n++ {
		p, err := l.Append(rec(n))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	if n == 1000 || n == 0 {
		t.Fatalf("bound never reached or reached at once: %d", n)
	}
	if st := l.Stats(); st.Bytes > 4096 || st.AppendErrs != 1 {
		t.Fatalf("over the bound: %+v", st)
	}
	// Shipped up to last: old segments may go, appends succeed again.
	l.Release(last)
	if _, err := l.Append(rec(n)); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if l.Stats().Deleted == 0 {
		t.Fatal("no segment deleted after release")
	}
	// A reader from the start skips the deleted segments.
	got, _ := readAll(t, dir, Pos{}, l.Head)
	if len(got) == 0 || !bytes.Equal(got[len(got)-1], rec(n)) {
		t.Fatalf("read after deletion: %d records", len(got))
	}
}

func TestRejectsBadRecords(t *testing.T) {
	l, _, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(nil); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	if _, err := l.Append(make([]byte, MaxRecord+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch([][]byte{[]byte("a"), nil}); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
}

// TestAppendFramedMatchesAppend: records sealed in place and handed over
// in one buffer leave segment files byte-identical to the same records
// appended one by one (rotation at SegmentBytes included), and bytes that
// are not whole frames are refused before anything is written.
func TestAppendFramedMatchesAppend(t *testing.T) {
	one, framed := t.TempDir(), t.TempDir()
	opt := Options{SegmentBytes: 4096}
	la, _, err := Open(one, opt)
	if err != nil {
		t.Fatal(err)
	}
	lb, _, err := Open(framed, opt)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var buf []byte
	for i := 0; i < n; i++ {
		if _, err := la.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		at := len(buf)
		buf = append(append(buf, make([]byte, FrameHeader)...), rec(i)...)
		if err := SealFrame(buf[at:]); err != nil {
			t.Fatal(err)
		}
	}
	// Three calls, the middle one splitting the records unevenly.
	cuts := []int{0, 0, 0, len(buf)}
	for i, p := 0, 0; i < n; i++ {
		if i == 170 {
			cuts[1] = p
		}
		if i == 171 {
			cuts[2] = p
		}
		p += FrameHeader + len(rec(i))
	}
	total := 0
	for c := 0; c < 3; c++ {
		w, err := lb.AppendFramed(buf[cuts[c]:cuts[c+1]])
		if err != nil {
			t.Fatal(err)
		}
		total += w
	}
	if total != n {
		t.Fatalf("AppendFramed wrote %d records, want %d", total, n)
	}
	if sa, sb := la.Stats(), lb.Stats(); sa.Segments != sb.Segments || sa.Segments < 5 || sa.Appends != sb.Appends {
		t.Fatalf("one by one %+v, framed %+v", sa, sb)
	}
	segs, _ := Segments(one)
	for _, s := range segs {
		a, _ := os.ReadFile(filepath.Join(one, segName(s)))
		b, err := os.ReadFile(filepath.Join(framed, segName(s)))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("segment %d differs (%d vs %d bytes, %v)", s, len(a), len(b), err)
		}
		if len(a) > 4096 {
			t.Fatalf("segment %d holds %d bytes, over SegmentBytes", s, len(a))
		}
	}
	// Not whole frames: a cut mid-frame, a zero length, a length past MaxRecord.
	head := lb.Head()
	zero := make([]byte, FrameHeader+4)
	huge := append([]byte(nil), buf[:FrameHeader+len(rec(0))]...)
	huge[3] = 0x7f
	for _, bad := range [][]byte{buf[:len(buf)-1], append(append([]byte(nil), buf[:FrameHeader+len(rec(0))]...), zero...), huge} {
		if w, err := lb.AppendFramed(bad); !errors.Is(err, ErrBadFrame) || w != 0 {
			t.Fatalf("bad frames: wrote %d, %v", w, err)
		}
	}
	if lb.Head() != head {
		t.Fatal("refused bytes moved the head")
	}
	if err := SealFrame(make([]byte, FrameHeader)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sealing an empty record: %v", err)
	}
	la.Close()
	lb.Close()
}

// TestAIOFsync: where the kernel runs fsync through AIO the log uses it
// (every group commit and the rotated files' final fsync), each flush is
// counted and leaves nothing unsynced; BlockingFsync keeps fsync(2) and
// says so.
func TestAIOFsync(t *testing.T) {
	l, _, err := Open(t.TempDir(), Options{SegmentBytes: 4096, FsyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Stats().AIOFsync {
		t.Skipf("this kernel does not take AIO fsync: %s", l.FsyncMode())
	}
	if m := l.FsyncMode(); m != "aio" {
		t.Fatalf("FsyncMode %q with AIO on", m)
	}
	for round := 1; round <= 3; round++ {
		for i := 0; i < 200; i++ { // rotates: the old segments are fsync'd too
			if _, err := l.Append(rec(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		st := l.Stats()
		if st.Fsyncs != int64(round) || st.FsyncErrs != 0 || st.Unsynced != 0 || !st.AIOFsync {
			t.Fatalf("round %d: %+v", round, st)
		}
	}
	b, _, err := Open(t.TempDir(), Options{BlockingFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Append(rec(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil || b.Stats().AIOFsync || !strings.Contains(b.FsyncMode(), "BlockingFsync") {
		t.Fatalf("blocking log: %v, %+v, %q", err, b.Stats(), b.FsyncMode())
	}
}

func TestAgeRotationAndFsync(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	dir := t.TempDir()
	l, _, err := Open(dir, Options{SegmentAge: time.Minute, Now: clock, FsyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(rec(1)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := l.Append(rec(2)); err != nil {
		t.Fatal(err)
	}
	if h := l.Head(); h.Segment != 2 {
		t.Fatalf("age rotation: head %+v", h)
	}
	// The group commit fsyncs within its interval: poll for it.
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Unsynced != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not fsync'd: %+v", l.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFsyncEveryAppend(t *testing.T) {
	l, _, err := Open(t.TempDir(), Options{FsyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		if st := l.Stats(); st.Unsynced != 0 {
			t.Fatalf("fsync per append: %d unsynced", st.Unsynced)
		}
	}
}

// FuzzSegment: any bytes as a segment never panic recovery or the reader,
// both agree on the records, and a second Open finds nothing more to cut.
func FuzzSegment(f *testing.F) {
	f.Add(segmentOf(frame(rec(0)), frame(rec(1))))
	f.Add(segmentOf(frame(rec(0)), []byte{1, 2, 3}, frame(rec(1)), frame(rec(2))[:9]))
	f.Add([]byte("ADEVLOG"))
	f.Add([]byte{})
	f.Add(append(frame(rec(3)), 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		offline, r := readAll(t, dir, Pos{}, nil)
		var recovered [][]byte
		l, rc, err := Open(dir, Options{OnRecord: func(p []byte) { recovered = append(recovered, append([]byte(nil), p...)) }})
		if err != nil {
			t.Fatal(err)
		}
		if int(rc.Records) != len(offline) || len(rc.DamagedSpans) != len(r.Damaged) || rc.TornBytes != r.Torn {
			t.Fatalf("recovery %+v vs reader %d records %v torn %d", rc, len(offline), r.Damaged, r.Torn)
		}
		for i := range offline {
			if !bytes.Equal(offline[i], recovered[i]) {
				t.Fatalf("record %d differs", i)
			}
		}
		if _, err := l.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l2, rc2, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		if rc2.TornBytes != 0 || rc2.Records != rc.Records+1 {
			t.Fatalf("second open %+v after %+v", rc2, rc)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{200} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			l, _, err := Open(b.TempDir(), Options{SegmentBytes: 256 << 20, MaxBytes: 64 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			p := bytes.Repeat([]byte{'e'}, size)
			b.SetBytes(int64(size + FrameHeader))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkAppendBatch64(b *testing.B) {
	l, _, err := Open(b.TempDir(), Options{SegmentBytes: 256 << 20, MaxBytes: 64 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ps := make([][]byte, 64)
	for i := range ps {
		ps[i] = bytes.Repeat([]byte{'e'}, 200)
	}
	b.SetBytes(64 * (200 + FrameHeader))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.AppendBatch(ps); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRecovery: Open over a log of WAL_BENCH_MB megabytes (default 256;
// docs/BENCHMARKS.md uses 1024) of 200-byte records.
func BenchmarkRecovery(b *testing.B) {
	mb := 256
	if v := os.Getenv("WAL_BENCH_MB"); v != "" {
		fmt.Sscan(v, &mb)
	}
	dir := b.TempDir()
	l, _, err := Open(dir, Options{MaxBytes: 64 << 30})
	if err != nil {
		b.Fatal(err)
	}
	ps := make([][]byte, 256)
	for i := range ps {
		ps[i] = bytes.Repeat([]byte{'e'}, 200)
	}
	for l.Stats().Bytes < int64(mb)<<20 {
		if _, err := l.AppendBatch(ps); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	b.SetBytes(int64(mb) << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, rc, err := Open(dir, Options{MaxBytes: 64 << 30})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rc.Records), "records")
		l.Close()
	}
}

// TestDiskFull runs the log on a real 256 KiB tmpfs: when the disk fills,
// appends fail with ENOSPC and leave no partial record; a failed append
// first deletes segments released (shipped) and retries; once space frees
// the log resumes, and a reopen finds every accepted record, no torn tail
// and no damaged span.
func TestDiskFull(t *testing.T) {
	mnt := tmpfs.Mount(t, 256<<10)
	dir := filepath.Join(mnt, "ev")
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	// No group commit during the test: rotated segments stay open until
	// deleted (the syncer closes them on its tick, which a loaded machine
	// delays), so freeing their space must not wait for it.
	l, _, err := Open(dir, Options{SegmentBytes: 16 << 10, MaxBytes: 1 << 30, FsyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted [][]byte
	var positions []Pos
	fillUp := func() int {
		for i := 0; ; i++ {
			r := rec(len(accepted) + 1000000)
			p, err := l.Append(r)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("append %d: %v, want ENOSPC", i, err)
				}
				return i
			}
			accepted = append(accepted, r)
			positions = append(positions, p)
		}
	}
	check := func(what string, want [][]byte) {
		t.Helper()
		got, rd := readAll(t, dir, Pos{}, l.Head)
		if rd.Torn != 0 || len(rd.Damaged) != 0 {
			t.Fatalf("%s: torn %d bytes, damaged %v", what, rd.Torn, rd.Damaged)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d records readable, want %d", what, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: record %d = %q, want %q", what, i, got[i], want[i])
			}
		}
	}
	n := fillUp()
	if n < 100 {
		t.Fatalf("only %d records fit in 192 KiB", n)
	}
	before := l.Stats()
	big := bytes.Repeat([]byte{'y'}, 8<<10) // more than any page left
	for i := 0; i < 50; i++ {               // full stays full, and nothing partial is left
		if _, err := l.Append(big); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append on a full disk: %v", err)
		}
	}
	if st := l.Stats(); st.Bytes != before.Bytes || st.Head != before.Head {
		t.Fatalf("failed appends moved the log: %+v -> %+v", before, st)
	}
	check("full", accepted)

	// Shipped up to the middle: the next append deletes those segments and
	// goes through although the disk is still full.
	mid := positions[len(positions)/2]
	l.Release(mid)
	p, err := l.Append(big)
	if err != nil {
		t.Fatalf("after release on a full disk: %v", err)
	}
	accepted, positions = append(accepted, big), append(positions, p)
	st := l.Stats()
	if st.Deleted == 0 {
		t.Fatal("no released segment deleted on ENOSPC")
	}
	// What survives: every record in segments from the oldest kept on.
	nums, _ := Segments(dir)
	keep := 0
	for i, p := range positions {
		if p.Segment >= nums[0] {
			keep = i
			break
		}
	}
	// positions[i] is the end of record i; record i lives in segment positions[i].Segment.
	accepted = accepted[keep:]
	positions = positions[keep:]
	check("after release", accepted)

	fillUp()
	if err := os.Remove(filler); err != nil { // space frees
		t.Fatal(err)
	}
	if m := fillUp(); m == 0 {
		t.Fatal("no append succeeded after space freed")
	}
	check("after space freed", accepted)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A restart on the full disk: recovery is clean, the log opens (the
	// edge must start and serve ads), appends fail until there is room.
	var seen int
	l, rc, err := Open(dir, Options{OnRecord: func([]byte) { seen++ }})
	if err != nil {
		t.Fatalf("reopen on the full tmpfs: %v", err)
	}
	if rc.TornBytes != 0 || len(rc.DamagedSpans) != 0 || seen != len(accepted) || rc.Records != int64(len(accepted)) {
		t.Fatalf("reopen after disk full: %+v, %d records seen, want %d", rc, seen, len(accepted))
	}
	check("reopened on a full disk", accepted)
	if _, err := l.Append(big); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append after reopen on a full disk: %v", err)
	}
	// Shipped all but the newest segment: room for a new segment.
	l.Release(positions[len(positions)-1])
	if _, err := l.Append(big); err != nil {
		t.Fatalf("append after release on the reopened full disk: %v", err)
	}
	nums, _ = Segments(dir)
	kept := accepted[:0:0]
	for i, p := range positions {
		if p.Segment >= nums[0] {
			kept = append(kept, accepted[i])
		}
	}
	check("after the second release", append(kept, big))
}

// Rotating to a new segment does not fsync the directory under the log's
// lock (that held every pixel for as long as a busy disk took): the next
// Sync does, and a failed directory fsync is retried by the one after.
func TestRotationSyncsDirectoryOutsideAppend(t *testing.T) {
	var calls atomic.Int64
	var fail atomic.Bool
	dir := t.TempDir()
	count := func(d string) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New("injected: directory fsync failed")
		}
		return syncDir(d)
	}
	l, _, err := Open(dir, Options{SegmentBytes: 1024, FsyncInterval: time.Hour, syncDir: count})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Sync(); err != nil { // the segment Open created
		t.Fatal(err)
	}
	before := calls.Load()
	rec := make([]byte, 300)
	for i := 0; i < 10; i++ { // about three segments
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if segs := l.Stats().Segments; segs < 3 {
		t.Fatalf("%d segments: the test did not rotate", segs)
	}
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("appends that rotated fsync'd the directory %d times", n)
	}
	fail.Store(true)
	if err := l.Sync(); err == nil {
		t.Fatal("Sync hid a failed directory fsync")
	}
	fail.Store(false)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load() - before; n != 2 {
		t.Fatalf("two Syncs after rotating made %d directory fsyncs, want 2 (the failed one retried)", n)
	}
	if err := l.Sync(); err != nil || calls.Load()-before != 2 {
		t.Fatalf("a Sync with no new segment fsync'd the directory (%d, %v)", calls.Load()-before, err)
	}
}
