package pacingsim

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/adedge/adedge/server/pacing"
)

// WorkerEnv, set in the environment of a re-executed adtool (or test
// binary), makes that process one edge of pacing-sim's fleet: Worker
// notices it before anything else runs.
const WorkerEnv = "ADEDGE_PACING_SIM_WORKER"

// Worker runs this process as a pacing-sim edge process when the parent
// started it as one (WorkerEnv set) and reports whether it did; the
// caller then exits with code. adtool's main and the package's TestMain
// call it first.
func Worker() (code int, isWorker bool) {
	if os.Getenv(WorkerEnv) == "" {
		return 0, false
	}
	if err := serveWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pacing-sim edge process:", err)
		return 1, true
	}
	return 0, true
}

// The pipe protocol (gob, one value per message): the parent sends a
// hello, the edge answers once it is ready; then per tick the parent
// sends a step and the edge answers what it did. The edge exits when its
// stdin ends (the parent closed it, or died).
type hello struct {
	Cfg   pacing.SimConfig // Store, Fleet and OnTick are not sent
	Edge  int
	Spend string // aerospike://... this process opens its own client on ("" = none)
}

type step struct {
	Tick   int
	Now    int64 // unix nanoseconds of the simulated clock
	Factor float64
	// Probe asks for nothing but an answer once this edge's store client
	// reads the store (after a store restart), within Wait.
	Probe bool
	Wait  time.Duration
}

type answer struct {
	Idx           []int32 // campaigns with billed spend counted this tick
	Amt           []int64 // their amounts
	Opportunities int64
	Served        int64
	Fallback      int64
	StoreErrors   uint64
	Pid           int
	Err           string
}

func serveWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := gob.NewDecoder(bufio.NewReader(in))
	bw := bufio.NewWriter(out)
	enc := gob.NewEncoder(bw)
	send := func(a answer) error {
		if err := enc.Encode(a); err != nil {
			return err
		}
		return bw.Flush()
	}
	fail := func(err error) error {
		_ = send(answer{Err: err.Error()})
		return err
	}
	var h hello
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("reading the parent's hello: %w", err)
	}
	cfg := h.Cfg
	var store *pacing.Aerospike
	if h.Spend != "" {
		var err error
		if store, err = pacing.OpenAerospike(h.Spend); err != nil {
			return fail(err)
		}
		defer store.Close()
		if err := waitStore(ctx, store, 30*time.Second); err != nil {
			return fail(err)
		}
		cfg.Store = store
	}
	ed, err := pacing.NewSimEdge(cfg, h.Edge)
	if err != nil {
		return fail(err)
	}
	if err := send(answer{Pid: os.Getpid()}); err != nil {
		return err
	}
	counted := make([]int64, cfg.Campaigns)
	var a answer
	for {
		var s step
		if err := dec.Decode(&s); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil // the parent is done (or gone)
			}
			return fmt.Errorf("reading a step: %w", err)
		}
		a = answer{Idx: a.Idx[:0], Amt: a.Amt[:0]}
		if s.Probe {
			if store != nil {
				if err := waitStore(ctx, store, s.Wait); err != nil {
					a.Err = err.Error()
				}
			}
		} else {
			a.Opportunities, a.Served = ed.Serve(s.Tick, s.Factor, counted)
			ed.Flush(ctx, time.Unix(0, s.Now).UTC())
			for i, amt := range counted {
				if amt != 0 {
					a.Idx = append(a.Idx, int32(i))
					a.Amt = append(a.Amt, amt)
					counted[i] = 0
				}
			}
			st := ed.Service().Stats()
			a.Fallback, a.StoreErrors = st.Fallback.Load(), st.StoreErrors.Load()
		}
		if err := send(a); err != nil {
			return err
		}
	}
}

// procFleet is pacing-sim's fleet: one OS process per edge (this
// executable again, WorkerEnv set), each running pacing.SimEdge — the
// edge's own Service — with its own Aerospike client and connections,
// stepped by the parent's simulated clock over its stdin and stdout.
type procFleet struct {
	procs []*edgeProc
}

type edgeProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	bw    *bufio.Writer
	enc   *gob.Encoder
	dec   *gob.Decoder
	pid   int
	done  chan struct{} // closed when the process has exited
}

// startFleet starts cfg.Edges edge processes of exe on spend and waits
// until each has its store client up. Each process is killed when this
// one dies (Pdeathsig) and exits when its stdin ends.
func startFleet(exe string, cfg pacing.SimConfig, spend string, stderr io.Writer) (*procFleet, error) {
	f := &procFleet{}
	cfg.Store, cfg.Fleet, cfg.OnTick = nil, nil, nil
	for e := 0; e < cfg.Edges; e++ {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), WorkerEnv+"=1")
		cmd.Stderr = stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			f.Close()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			f.Close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			f.Close()
			return nil, fmt.Errorf("starting edge process %d (%s): %w", e, exe, err)
		}
		p := &edgeProc{cmd: cmd, stdin: stdin, bw: bufio.NewWriter(stdin), dec: gob.NewDecoder(bufio.NewReader(stdout)),
			done: make(chan struct{})}
		p.enc = gob.NewEncoder(p.bw)
		go func() { _ = cmd.Wait(); close(p.done) }()
		f.procs = append(f.procs, p)
		if err := p.send(hello{Cfg: cfg, Edge: e, Spend: spend}); err != nil {
			f.Close()
			return nil, fmt.Errorf("edge process %d: %w", e, err)
		}
	}
	for e, p := range f.procs {
		a, err := p.recv()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("edge process %d: %w", e, err)
		}
		p.pid = a.Pid
	}
	return f, nil
}

func (p *edgeProc) send(v any) error {
	if err := p.enc.Encode(v); err != nil {
		return err
	}
	return p.bw.Flush()
}

func (p *edgeProc) recv() (answer, error) {
	var a answer
	if err := p.dec.Decode(&a); err != nil {
		return a, fmt.Errorf("no answer (exited?): %w", err)
	}
	if a.Err != "" {
		return a, errors.New(a.Err)
	}
	return a, nil
}

// Step implements pacing.SimFleet: every process gets the tick at once
// and serves and flushes concurrently with the others.
func (f *procFleet) Step(ctx context.Context, tick int, now time.Time, factor float64, counted []int64) (pacing.SimStep, error) {
	var st pacing.SimStep
	if err := ctx.Err(); err != nil {
		return st, err
	}
	s := step{Tick: tick, Now: now.UnixNano(), Factor: factor}
	for e, p := range f.procs {
		if err := p.send(s); err != nil {
			return st, fmt.Errorf("edge process %d: %w", e, err)
		}
	}
	for e, p := range f.procs {
		a, err := p.recv()
		if err != nil {
			return st, fmt.Errorf("edge process %d at tick %d: %w", e, tick, err)
		}
		for k, i := range a.Idx {
			if int(i) >= len(counted) {
				return st, fmt.Errorf("edge process %d: campaign %d of %d", e, i, len(counted))
			}
			counted[i] += a.Amt[k]
		}
		st.Opportunities += a.Opportunities
		st.Served += a.Served
		st.Fallback += a.Fallback
		st.StoreErrors += a.StoreErrors
	}
	return st, nil
}

// probe waits until every process's store client reads the store again
// (after a restart), so the simulated clock does not run on while the
// clients find the node.
func (f *procFleet) probe(wait time.Duration) error {
	for e, p := range f.procs {
		if err := p.send(step{Probe: true, Wait: wait}); err != nil {
			return fmt.Errorf("edge process %d: %w", e, err)
		}
	}
	var errs []string
	for e, p := range f.procs {
		if _, err := p.recv(); err != nil {
			errs = append(errs, fmt.Sprintf("edge process %d: %v", e, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// pids are the edge processes' ids.
func (f *procFleet) pids() []int {
	out := make([]int, len(f.procs))
	for i, p := range f.procs {
		out[i] = p.pid
	}
	return out
}

// Close ends the processes: their stdin closes, they exit; any still
// there after 10 s is killed.
func (f *procFleet) Close() {
	for _, p := range f.procs {
		_ = p.stdin.Close()
	}
	for _, p := range f.procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}
