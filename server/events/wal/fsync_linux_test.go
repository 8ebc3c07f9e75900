//go:build linux

package wal

import (
	"testing"
	"unsafe"
)

// TestAIOStructLayout pins struct iocb and struct io_event to the kernel's
// sizes (linux/aio_abi.h): 64 and 32 bytes, the fields at their offsets.
func TestAIOStructLayout(t *testing.T) {
	var cb iocb
	if s := unsafe.Sizeof(cb); s != 64 {
		t.Fatalf("iocb is %d bytes, want 64", s)
	}
	if o := [4]uintptr{unsafe.Offsetof(cb.opcode), unsafe.Offsetof(cb.fildes), unsafe.Offsetof(cb.flags), unsafe.Offsetof(cb.resfd)}; o != [4]uintptr{16, 20, 56, 60} {
		t.Fatalf("iocb offsets %v, want [16 20 56 60]", o)
	}
	if s := unsafe.Sizeof(ioEvent{}); s != 32 {
		t.Fatalf("io_event is %d bytes, want 32", s)
	}
}
