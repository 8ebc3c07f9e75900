package evloop

import (
	"syscall"
	"testing"
)

// BenchmarkEmptyRead is one read(2) of an empty non-blocking socket: the
// EAGAIN read a goroutine-per-connection server makes after every answer
// before it parks, and the event loop does not. Its cost is the machine's
// system-call cost (docs/BENCHMARKS.md, "A syscall costs 1.9 us here").
func BenchmarkEmptyRead(b *testing.B) {
	p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	buf := make([]byte, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := syscall.Read(p[0], buf); err != syscall.EAGAIN {
			b.Fatalf("read of an empty socket: %v, want EAGAIN", err)
		}
	}
}

// pages is memory spread over distinct pages, for the TLB benchmarks.
var pages = make([]byte, 256<<20)

var sink byte

// touch reads one byte in each of n distinct pages.
func touch(n int) {
	var s byte
	for i := 0; i < n; i++ {
		s += pages[i*4096*7%len(pages)]
	}
	sink = s
}

func benchTouch(b *testing.B, n int, read bool) {
	p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	for i := 0; i < len(pages); i += 4096 {
		pages[i] = 1
	}
	buf := make([]byte, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if read {
			_, _ = syscall.Read(p[0], buf)
		}
		touch(n)
	}
}

// BenchmarkTouch256Pages and BenchmarkEmptyReadTouch256Pages tell how much
// a system call costs the user code after it in TLB refills (page-table
// isolation without PCID flushes the TLB on every kernel entry): the
// second minus the first minus BenchmarkEmptyRead.
func BenchmarkTouch256Pages(b *testing.B)          { benchTouch(b, 256, false) }
func BenchmarkEmptyReadTouch256Pages(b *testing.B) { benchTouch(b, 256, true) }
