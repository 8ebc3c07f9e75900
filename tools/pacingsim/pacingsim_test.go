package pacingsim

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/aerokit"
)

// TestMain lets the test binary be pacing-sim's edge processes (Run
// re-executes it with WorkerEnv set).
func TestMain(m *testing.M) {
	if code, ok := Worker(); ok {
		os.Exit(code)
	}
	if os.Getenv(testParentEnv) != "" {
		os.Exit(testParent())
	}
	os.Exit(m.Run())
}

// TestQuick is `adtool pacing-sim --quick` against a real Aerospike from
// the kit (skipped with the reason outside CI when the kit is absent): 8
// edge processes (this test binary again, TestMain), 50 campaigns, both
// modes, the store killed at noon for 1 s of the 15 s day (1.6 simulated
// hours) and restarted with its counters. It checks the targets,
// the hourly pace error at the 10%, and that the store holds
// every increment the edges counted.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	srv := aerokit.StartWith(t, aerokit.Options{Persist: true})
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Quick: true, Outage: time.Second, Server: srv,
		Spend: "aerospike://" + srv.Addr() + "/" + aerokit.NamespaceTest + "/pacing_sim"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if res.EdgesRun != "processes" || res.OutageKind != "kill" {
		t.Fatalf("edges %s, outage %s: want processes and a kill", res.EdgesRun, res.OutageKind)
	}
	if res.Even.Ticks == 0 || res.ASAP.Ticks == 0 {
		t.Fatal("no ticks")
	}
	for k, ok := range res.Targets {
		if !ok {
			t.Errorf("target %s not met", k)
		}
	}
}
