// Package tmpfs mounts a size-limited tmpfs for disk-full tests: a real
// file system that answers ENOSPC, not a simulated write error. Mounting
// needs root (CAP_SYS_ADMIN); without it a test skips with the reason, and
// under CI=true (where .ci/run runs as root) it fails instead.
package tmpfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new directory under t.TempDir()
// and unmounts it in t.Cleanup (register cleanups that close files in it
// after calling Mount, so they run first).
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and cannot mount a %d-byte tmpfs on %s: %v (the disk-full drill needs root)", size, dir, err)
		}
		t.Skipf("skipping: cannot mount a tmpfs (%v; needs root / CAP_SYS_ADMIN)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file at path until the file system is full and returns
// how many bytes it took (the file system's free space).
func Fill(t testing.TB, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			return n
		}
	}
}
