package pacingsim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adedge/adedge/server/pacing"
)

// testParentEnv makes the test binary a pacing-sim parent that starts two
// edge processes, prints their pids and waits to be killed
// (TestEdgeProcessesDieWithParent).
const testParentEnv = "ADEDGE_PACING_SIM_TEST_PARENT"

func testParent() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := startFleet(exe, pacing.SimConfig{Edges: 2, Campaigns: 3, Seed: 1, Tick: time.Minute, Curve: diurnal}, "", os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// One tick, so the processes are past their start-up.
	if _, err := f.Step(context.Background(), 0, pacing.SimDay, 1, make([]int64, 3)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("pids", strings.Trim(fmt.Sprint(f.pids()), "[]"))
	select {} // until killed
}

// TestEdgeProcessesDieWithParent kills a pacing-sim parent with SIGKILL
// (no cleanup runs) and checks that its edge processes do not outlive it.
func TestEdgeProcessesDieWithParent(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), testParentEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("parent printed no pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "pids")) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("parent said %q", line)
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !strings.Contains(string(env), WorkerEnv+"=1") {
			t.Fatalf("pid %d is not an edge process: %v", pid, err)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("parent said %q, want 2 pids", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for _, pid := range pids {
		deadline := time.Now().Add(30 * time.Second)
		for !gone(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("edge process %d still running 30 s after its parent was killed", pid)
			}
			time.Sleep(10 * time.Millisecond) // polling the process table
		}
	}
}

// gone reports whether pid has exited (a zombie nobody reaps counts).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}
