package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/adedge/adedge/internal/cliflag"
)

var update = flag.Bool("update", false, "rewrite README.md's adbuilder usage blocks (make readme)")

func TestMain(m *testing.M) {
	cliflag.RunAsMainIf("adbuilder", main) // the test binary re-run as adbuilder (RunSelf)
	os.Exit(m.Run())
}

func runAsAdbuilder(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	code, out, errs, err := cliflag.RunSelf("adbuilder", env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return code, out, errs
}

// TestHelpExitsZero: adbuilder -h and each command's -h/--help exit 0 with
// the usage on stdout; README.md's blocks are those usages.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"build", "-h"}, {"build", "--help"}, {"serve", "-h"}, {"serve", "--help"}} {
		code, out, errs := runAsAdbuilder(t, nil, args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: adbuilder") {
			t.Errorf("%v: exit %d, stderr %q, stdout %.60q", args, code, errs, out)
		}
	}
	if err := cliflag.CheckDoc("../../../README.md", "adbuilder build -h", buildFlags(&buildArgs{}).Usage(), *update); err != nil {
		t.Error(err)
	}
	if err := cliflag.CheckDoc("../../../README.md", "adbuilder serve -h", serveFlags(&serveArgs{}).Usage(), *update); err != nil {
		t.Error(err)
	}
}

// TestBadValuesAreFatal: bad ADBUILDER_ values, flags and
// SOURCE_DATE_EPOCH stop adbuilder with exit 2 before it reads anything.
func TestBadValuesAreFatal(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ADBUILDER_POLL=2 seconds"}, []string{"serve", "--input", dir, "--data", dir, "--key", "k"},
			`adbuilder serve: ADBUILDER_POLL="2 seconds" (--poll): want a duration like 250ms, 5s or 1m30s`},
		{[]string{"ADBUILDER_MAX_PEERS=many"}, []string{"serve", "--input", dir, "--data", dir, "--key", "k"},
			`adbuilder serve: ADBUILDER_MAX_PEERS="many" (--max-peers): want an integer`},
		{nil, []string{"serve", "--input", dir, "--data", dir, "--key", "k", "--piece-length", "1000"},
			`adbuilder serve: --piece-length "1000": want a power of two from 16384 to 16777216`},
		{nil, []string{"serve", "--input", dir, "--data", dir, "--key", "k", "--keep", "0"},
			`adbuilder serve: --keep "0": want an integer >= 1`},
		{nil, []string{"serve", "--input", dir, "--data", dir}, `adbuilder serve: --key is required (run 'adbuilder serve -h' for the flags)`},
		{[]string{"ADBUILDER_QUIET=quiet"}, []string{"build", "--input", dir, "--out", dir},
			`adbuilder build: ADBUILDER_QUIET="quiet" (--quiet): want true or false`},
		{nil, []string{"build", "--input", dir, "--out", dir, "--created", "yesterday"},
			`adbuilder build: --created "yesterday": want an RFC 3339 time like 2026-11-22T05:00:00Z`},
		{[]string{"SOURCE_DATE_EPOCH=soon"}, []string{"build", "--input", dir, "--out", dir},
			`adbuilder build: SOURCE_DATE_EPOCH="soon": want unix seconds (a non-negative integer)`},
	} {
		code, out, errs := runAsAdbuilder(t, tc.env, tc.args...)
		if code != 2 || strings.TrimSpace(errs) != tc.want || out != "" {
			t.Errorf("%v %v: exit %d, stderr %q, stdout %q; want 2 and %q", tc.env, tc.args, code, errs, out, tc.want)
		}
	}
}
