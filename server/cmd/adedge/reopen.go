package main

import (
	"fmt"
	"log"
	"os"
	"sync"
	"syscall"
	"time"
)

// reopenFile is the access log file, reopened by path on SIGHUP so
// logrotate can move it away (the ring's single writer goroutine is the
// only other user of the lock, so it is never contended on a request).
type reopenFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openLog(path string) (*reopenFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	return &reopenFile{path: path, f: f}, nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// Reopen opens the path afresh and closes the old file; on error the old
// file stays in use.
func (r *reopenFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// drainSource names a drain that came from no signal, for the log.
type drainSource string

func (d drainSource) String() string { return string(d) }

// drainWait is the grace period of the drain: /health already answers 503
// and the agent says drain, the edge keeps serving while the balancer takes
// it out of rotation. A second SIGTERM or SIGINT ends the wait early
// (SIGHUP is ignored here).
func drainWait(why fmt.Stringer, grace time.Duration, sigs <-chan os.Signal) {
	if grace <= 0 {
		return
	}
	log.Printf("%s: draining: /health now 503, agent says drain; serving on for %s while the balancer takes this edge out", why, grace)
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Printf("%s again: grace cut short", sig)
				return
			}
		}
	}
}
