package snapsource

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// watcher turns inotify events on Dir into wake-ups for Run, so a snapshot
// renamed into place is picked up at once instead of at the next poll.
type watcher struct {
	f  *os.File
	wg sync.WaitGroup
}

// startWatch watches dir for files renamed in (IN_MOVED_TO, how writers
// publish) or closed after writing (IN_CLOSE_WRITE, a plain copy) and calls
// notify with each name; "" means events were lost and everything should be
// rescanned.
func startWatch(dir string, notify func(name string)) (io.Closer, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_ONLYDIR); err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	// A non-blocking fd makes the File pollable, so Close wakes the reader.
	w := &watcher{f: os.NewFile(uintptr(fd), "inotify:"+dir)}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.loop(notify)
	}()
	return w, nil
}

func (w *watcher) loop(notify func(name string)) {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed, or the watch is gone: polling carries on
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			mask := binary.NativeEndian.Uint32(b[4:])
			l := int(binary.NativeEndian.Uint32(b[12:]))
			if unix.SizeofInotifyEvent+l > len(b) {
				break
			}
			name := b[unix.SizeofInotifyEvent : unix.SizeofInotifyEvent+l]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[unix.SizeofInotifyEvent+l:]
			switch {
			case mask&unix.IN_Q_OVERFLOW != 0:
				notify("")
			case mask&unix.IN_IGNORED != 0:
				notify("")
				return
			case len(name) > 0:
				notify(string(name))
			}
		}
	}
}

// Close stops the watch and waits for its goroutine.
func (w *watcher) Close() error {
	err := w.f.Close()
	w.wg.Wait()
	return err
}
