package profiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"

	"github.com/adedge/adedge/internal/aerokit"
)

func TestMain(m *testing.M) { os.Exit(aerokit.Main(m)) }

// TestAerospikeIntegration runs the store against a real server: the kit
// in ../shared/aerospike (internal/aerokit), or AEROSPIKE_HOST=host:port
// (and AEROSPIKE_NAMESPACE, default "test"). Records go to a fresh set and
// are deleted afterwards.
func TestAerospikeIntegration(t *testing.T) {
	host := aerokit.Shared(t)
	ns := aerokit.Namespace()
	set := fmt.Sprintf("adedge_it_%d", time.Now().UnixNano())
	st, err := Open(fmt.Sprintf("aerospike://%s/%s/%s?timeout=100ms&write_timeout=2s&connect_timeout=5s&min_conns=2", host, ns, set))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s := st.(*AerospikeStore)
	defer s.Close()
	devices := []string{"it-dev-1", "it-dev-2"}
	defer func() {
		for _, d := range devices {
			if k, err := as.NewKey(ns, set, d); err == nil {
				_, _ = s.client.Delete(nil, k)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	in := &Profile{Segments: []string{"gamers"}, InstalledApps: sortApps([]uint64{AppHash("com.a"), 1 << 63})}
	if err := s.PutProfile(ctx, devices[0], in); err != nil {
		t.Fatalf("PutProfile: %v", err)
	}
	var p Profile
	if err := s.Get(ctx, devices[0], &p); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !p.HasSegment("gamers") || !p.HasApp(AppHash("com.a")) || !p.HasApp(1<<63) {
		t.Fatalf("got %+v", p)
	}
	if err := s.Get(ctx, "it-nobody", &p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	const hour = 3600
	now := time.Now().Unix()
	for i := 0; i < 3; i++ {
		if err := s.IncrementCap(ctx, devices[1], "camp", hour, now); err != nil {
			t.Fatalf("IncrementCap: %v", err)
		}
	}
	next := WindowStart(now, hour) + hour
	if err := s.IncrementCap(ctx, devices[1], "camp", hour, next); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, devices[1], &p); err != nil {
		t.Fatal(err)
	}
	if got := p.CapCount("camp", hour, next); got != 1 {
		t.Fatalf("next window count = %d, want 1 (caps %+v)", got, p.Caps)
	}
	if len(p.Caps) != 1 {
		t.Fatalf("old window not removed: %+v", p.Caps)
	}
}
