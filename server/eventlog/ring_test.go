package eventlog

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEveryLineWrittenOrCountedAsDropped(t *testing.T) {
	r := New(64)
	var out syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, &out, time.Millisecond); close(done) }()
	const producers, each = 8, 5000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r.Write([]byte(fmt.Sprintf("p%d-%d", p, i)))
			}
		}(p)
	}
	wg.Wait()
	cancel()
	<-done
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] || !strings.HasPrefix(l, "p") {
			t.Fatalf("duplicate or garbled line %q", l)
		}
		seen[l] = true
	}
	if uint64(len(lines))+r.Dropped() != producers*each || r.Written() != uint64(len(lines)) {
		t.Fatalf("%d written + %d dropped != %d", len(lines), r.Dropped(), producers*each)
	}
}

func TestFullRingDropsInsteadOfBlocking(t *testing.T) {
	r := New(4)
	for i := 0; i < 4; i++ {
		if !r.Write([]byte("x")) {
			t.Fatal("write into a free slot failed")
		}
	}
	if r.Write([]byte("y")) || r.Dropped() != 1 {
		t.Fatal("full ring did not drop")
	}
	long := bytes.Repeat([]byte("z"), 1000)
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Run(ctx, &out, time.Hour)
	if !r.Write(long) {
		t.Fatal("drained ring still full")
	}
	out.Reset()
	r.Run(ctx, &out, time.Hour)
	if got := strings.TrimSuffix(out.String(), "\n"); len(got) != LineSize || !strings.HasSuffix(got, "...") {
		t.Fatalf("long line not cut to %d bytes with an ellipsis: %d", LineSize, len(got))
	}
}

func BenchmarkWrite(b *testing.B) {
	r := New(1 << 16)
	line := []byte("2026-11-22T05:00:00Z GET /v1/ad 200 123us filled cmp-0000001")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx, discard{}, time.Millisecond)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Write(line)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
