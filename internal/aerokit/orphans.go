package aerokit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A kit server is not our child: start.sh starts asd with setsid and
// exits, so nothing ties the server's life to the process that asked for
// it. A test binary killed by `go test -timeout` (or kill -9) never runs
// its cleanups and used to leave asd running. Two guards, each enough
// alone:
//
//   - a watchdog per running server: a small sh process in a session of
//     its own, reading a pipe whose only write end this process holds.
//     When this process dies, however it dies, the kernel closes the write
//     end, the watchdog reads EOF and stops the server (TERM, then KILL)
//     and removes its directory. A normal Stop or Kill releases the
//     watchdog after the server is gone, and it exits doing nothing.
//   - an owner file in each server's directory (this process's pid and
//     start time): every start first reaps the servers whose owner is no
//     longer running (a watchdog that was itself killed).

// ownerFile names the process that started the server in its directory.
const ownerFile = "owner"

// watchdogScript waits for EOF on stdin, then stops asd pid $1 if it is
// still the server of directory $2, and removes that directory.
const watchdogScript = `read -r _ 2>/dev/null
pid=$1 dir=$2
case "$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)" in
*"$dir/aerospike.conf"*) ;;
*) exit 0 ;;
esac
kill -CONT "$pid" 2>/dev/null
kill -TERM "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 120 ]; do sleep 0.25; i=$((i+1)); done
kill -KILL "$pid" 2>/dev/null
rm -rf "$dir"
`

// watchdog is a running server's guard process and the pipe that keeps it
// waiting.
type watchdog struct {
	w   *os.File
	cmd *exec.Cmd
}

// watch starts the guard of the server with pid.
func (s *Server) watch(pid int) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("aerokit: watchdog pipe: %w", err)
	}
	cmd := exec.Command("sh", "-c", watchdogScript, "aerokit-watchdog", strconv.Itoa(pid), s.dir)
	cmd.Stdin = r
	// Its own session: a signal to this process's group (a terminal's ^C,
	// go test killing the group) must not take the guard with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return fmt.Errorf("aerokit: watchdog: %w", err)
	}
	s.guard = &watchdog{w: w, cmd: cmd}
	return nil
}

// unwatch releases the guard once the server is gone (it then finds no
// server to stop and exits).
func (s *Server) unwatch() {
	g := s.guard
	if g == nil {
		return
	}
	s.guard = nil
	g.w.Close()
	go g.cmd.Wait() // reap it; it exits at once
}

// writeOwner records this process as the owner of dir.
func writeOwner(dir string) error {
	st, err := procStart(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(fmt.Sprintf("%d %d\n", os.Getpid(), st)), 0o644)
}

// procStart is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat): with the pid it names one process, even after the
// pid is reused.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("aerokit: /proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("aerokit: /proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22 overall; f[0] is field 3
}

// ownerGone reports whether the owner recorded in dir has exited (false
// when dir has no readable owner file: not ours to judge).
func ownerGone(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(b), &pid, &start); err != nil || pid <= 0 {
		return false
	}
	st, err := procStart(pid)
	return err != nil || st != start
}

// reapOrphans stops the kit servers under tmp whose owner has exited and
// removes their directories; it returns the directories it reaped.
func reapOrphans(tmp string) []string {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "aerokit-*"))
	var reaped []string
	for _, dir := range dirs {
		if !ownerGone(dir) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "asd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && serves(pid, dir) {
				_ = syscall.Kill(pid, syscall.SIGCONT)
				_ = syscall.Kill(pid, syscall.SIGTERM)
				if waitExit(pid, 30*time.Second) != nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					_ = waitExit(pid, 10*time.Second)
				}
			}
		}
		os.RemoveAll(dir)
		reaped = append(reaped, dir)
	}
	return reaped
}

// serves reports whether pid is the asd of directory dir.
func serves(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), filepath.Join(dir, "aerospike.conf")) && alive(pid)
}

// waitExit polls until pid has exited (it is not our child: no wait).
func waitExit(pid int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("aerokit: pid %d still running after %v", pid, d)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
