package pacingsim

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/aerokit"
)

// TestQuick is `adtool pacing-sim --quick` against a real Aerospike from
// the kit (skipped with the reason outside CI when the kit is absent): 8
// edges, 50 campaigns, both modes, the store paused at noon for 1 s of the
// 15 s day (1.6 simulated hours). It checks the targets, the
// hourly pace error at the 10%.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	srv := aerokit.Start(t)
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Quick: true, Outage: time.Second, Server: srv,
		Spend: "aerospike://" + srv.Addr() + "/" + aerokit.NamespaceTest + "/pacing_sim"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if res.Even.Ticks == 0 || res.ASAP.Ticks == 0 {
		t.Fatal("no ticks")
	}
	for k, ok := range res.Targets {
		if !ok {
			t.Errorf("target %s not met", k)
		}
	}
}
