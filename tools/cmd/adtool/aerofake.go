package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/profiles/aerotest"
)

func init() {
	register("aerofake", "run the in-memory Aerospike wire-protocol server (tests, demos, benchmarks; not for production)", runAerofake)
}

func runAerofake(args []string) int {
	fs := newFlagSet("aerofake")
	listen := fs.String("listen", "127.0.0.1:3000", "loopback address")
	ns := fs.String("namespace", "test", "namespace to serve")
	delay := fs.Duration("delay", 0, "answer every data request this late (a slow server)")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	s, err := aerotest.StartOn(*listen, *ns)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool aerofake: %v\n", err)
		return 1
	}
	s.SetDelay(*delay)
	fmt.Fprintf(os.Stderr, "aerofake: namespace %q on %s (in memory; Ctrl-C stops)\n", *ns, s.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	st := s.Stats()
	s.Close()
	fmt.Fprintf(os.Stderr, "aerofake: stopped after %+v\n", st)
	return 0
}
