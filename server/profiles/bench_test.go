package profiles

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/aerotest"
)

func benchFile(b *testing.B) *FileStore {
	var sb strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&sb, `{"device":"dev-%d","segments":["s%d","s%d","all"],"installed_apps":["com.a%d","com.b%d","com.c"]}`+"\n", i, i%10, i%13, i, i%50)
	}
	s, err := OpenFile(writeFile(b, sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	_ = s.IncrementCap(context.Background(), "dev-42", "camp", 3600, time.Now().Unix())
	return s
}

// BenchmarkFileStoreGet measures the hot-path read with a reused Profile
// and a deadline context, as the edge calls it; expect 0 allocs/op.
func BenchmarkFileStoreGet(b *testing.B) {
	s := benchFile(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var p Profile
		for pb.Next() {
			if err := s.Get(ctx, "dev-42", &p); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkFileStoreIncrementCap(b *testing.B) {
	s := benchFile(b)
	ctx := context.Background()
	now := time.Now().Unix()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.IncrementCap(ctx, "dev-42", "camp", 3600, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkNoneGet(b *testing.B) {
	s := NewNone()
	var p Profile
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = s.Get(ctx, "dev", &p)
	}
}

// BenchmarkAerospikeGet is a full round trip through the real client to
// the in-process test server over loopback: client overhead plus TCP.
func BenchmarkAerospikeGet(b *testing.B) {
	srv := aerotest.New(b)
	s := openAero(b, srv, "")
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.PutProfile(wctx, "dev", &Profile{Segments: []string{"a", "b", "c"}, InstalledApps: []uint64{1, 2, 3, 4}}); err != nil {
		b.Fatal(err)
	}
	if err := s.IncrementCap(wctx, "dev", "camp", 3600, time.Now().Unix()); err != nil {
		b.Fatal(err)
	}
	var p Profile
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.Get(gctx, "dev", &p)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAerospikeIncrementCap(b *testing.B) {
	srv := aerotest.New(b)
	s := openAero(b, srv, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	now := time.Now().Unix()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.IncrementCap(ctx, "dev", "camp", 3600, now); err != nil {
			b.Fatal(err)
		}
	}
}
