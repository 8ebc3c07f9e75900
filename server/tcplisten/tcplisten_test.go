package tcplisten

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"
)

// completed dials addr n times without the listener accepting and returns
// how many handshakes completed: Linux completes backlog+1, then drops SYNs
// while the accept queue is full. The first room dials have room in the
// queue and complete in the kernel whatever the load: they get a timeout
// only a failure reaches (300 ms was missed at load 30 by a test process
// that did not run in time to see its completed connect). The rest are
// expected to meet a full queue: a dropped SYN is retried after 1 s, so
// 300 ms tells it from a completion, and a late process only fails them
// more surely.
func completed(t *testing.T, addr string, n, room int) int {
	t.Helper()
	ok := 0
	for i := 0; i < n; i++ {
		timeout := 300 * time.Millisecond
		if i < room {
			timeout = 10 * time.Second
		}
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			continue
		}
		ok++
		t.Cleanup(func() { c.Close() })
	}
	return ok
}

func TestBacklogIsApplied(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("accept-queue overflow behaviour checked on Linux only")
	}
	ln, err := Listen(context.Background(), "127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := completed(t, ln.Addr().String(), 7, 4); got != 4 {
		t.Errorf("backlog 3: %d handshakes completed, want 4 (backlog+1)", got)
	}
	// The listener still works once accepted from.
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	big, err := Listen(context.Background(), "127.0.0.1:0", 64)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	if got := completed(t, big.Addr().String(), 12, 12); got != 12 {
		t.Errorf("backlog 64: %d of 12 handshakes completed", got)
	}
}

func TestErrors(t *testing.T) {
	if _, err := Listen(context.Background(), "127.0.0.1:0", -1); err == nil {
		t.Error("negative backlog accepted")
	}
	ln, err := Listen(context.Background(), "127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(context.Background(), ln.Addr().String(), 16); err == nil {
		t.Error("a port in use was bound twice")
	}
}
