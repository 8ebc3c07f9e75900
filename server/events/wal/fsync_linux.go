//go:build linux

package wal

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// aioFsync runs fsync through Linux AIO (IOCB_CMD_FSYNC, kernel 4.18 and
// later): the kernel flushes in its workqueue and signals an eventfd, and
// the syncing goroutine waits for that eventfd in Go's netpoller. A plain
// fsync is a blocking syscall that keeps its P until sysmon takes it back,
// up to 10 ms later on a busy process: an edge with one P (pinned to one
// CPU) waited out every group commit on the request path
// (docs/DECISIONS.md, "The event log's fsync must not hold the only P").
// One request is in flight at a time (Sync holds syncMu).
type aioFsync struct {
	mu  sync.Mutex
	ctx uintptr  // aio_context_t
	ev  *os.File // eventfd, non-blocking, so it waits in the netpoller
	efd uintptr
	cb  iocb
	cbp *iocb
	evs [1]ioEvent
}

// iocb is struct iocb of linux/aio_abi.h (little-endian field order).
type iocb struct {
	_      uint64 // aio_data
	_      uint32 // aio_key
	_      int32  // aio_rw_flags
	opcode uint16
	_      int16 // aio_reqprio
	fildes uint32
	_      uint64 // aio_buf
	_      uint64 // aio_nbytes
	_      int64  // aio_offset
	_      uint64 // aio_reserved2
	flags  uint32
	resfd  uint32
}

// ioEvent is struct io_event.
type ioEvent struct {
	data, obj uint64
	res, res2 int64
}

const (
	iocbCmdFsync  = 2
	iocbFlagResfd = 1
)

// errNoAIO: the kernel refused an AIO fsync; the log falls back to fsync(2).
var errNoAIO = errors.New("wal: AIO fsync unavailable")

// newAIOFsync sets up an AIO context and its eventfd, or says why not
// (seccomp, gVisor, aio-max-nr reached): then fsync(2) is used.
func newAIOFsync() (*aioFsync, error) {
	a := &aioFsync{}
	if _, _, e := syscall.Syscall(syscall.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&a.ctx)), 0); e != 0 {
		return nil, e
	}
	fd, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		syscall.Syscall(syscall.SYS_IO_DESTROY, a.ctx, 0, 0)
		return nil, e
	}
	a.efd, a.ev = fd, os.NewFile(fd, "wal-fsync-eventfd")
	a.cbp = &a.cb
	return a, nil
}

// fsync flushes f as fsync(2) would. errNoAIO (wrapped) means the request
// was not taken: the caller syncs the ordinary way.
func (a *aioFsync) fsync(f *os.File) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr syscall.Errno
	// The kernel takes its own reference to the file at submission, so the
	// flush is safe even if f were closed before it completes.
	if cerr := rc.Control(func(fd uintptr) {
		a.cb = iocb{opcode: iocbCmdFsync, fildes: uint32(fd), flags: iocbFlagResfd, resfd: uint32(a.efd)}
		_, _, serr = syscall.Syscall(syscall.SYS_IO_SUBMIT, a.ctx, 1, uintptr(unsafe.Pointer(&a.cbp)))
	}); cerr != nil {
		return cerr
	}
	if serr != 0 {
		return errors.Join(errNoAIO, serr)
	}
	var cnt [8]byte
	if _, err := io.ReadFull(a.ev, cnt[:]); err != nil { // parks in the netpoller, holding no P
		return err
	}
	// The completion is queued before the eventfd is signalled: this
	// returns at once.
	n, _, e := syscall.Syscall6(syscall.SYS_IO_GETEVENTS, a.ctx, 1, 1, uintptr(unsafe.Pointer(&a.evs[0])), 0, 0)
	if e != 0 {
		return e
	}
	if n != 1 {
		return errors.New("wal: AIO fsync completed without an event")
	}
	if r := a.evs[0].res; r < 0 {
		return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.Errno(-r)}
	}
	return nil
}

func (a *aioFsync) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ev.Close()
	syscall.Syscall(syscall.SYS_IO_DESTROY, a.ctx, 0, 0)
}
