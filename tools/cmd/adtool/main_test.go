package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/adedge/adedge/internal/cliflag"
)

var update = flag.Bool("update", false, "rewrite the usage blocks of README.md and docs/ADTOOL.md (make readme)")

func TestMain(m *testing.M) {
	cliflag.RunAsMainIf("adtool", main) // the test binary re-run as adtool (RunSelf)
	os.Exit(m.Run())
}

func runAsAdtool(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	code, out, errs, err := cliflag.RunSelf("adtool", env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return code, out, errs
}

// TestHelpExitsZero: `adtool -h` and every `adtool <command> -h` or
// `--help` print the usage to stdout and exit 0; docs/ADTOOL.md is those
// usages and README.md's block is `adtool -h`.
func TestHelpExitsZero(t *testing.T) {
	code, top, errs := runAsAdtool(t, nil, "-h")
	if code != 0 || errs != "" || !strings.HasPrefix(top, "usage: adtool <command>") {
		t.Fatalf("adtool -h: exit %d, stderr %q", code, errs)
	}
	var all strings.Builder
	for _, name := range commandNames() {
		for _, h := range []string{"-h", "--help"} {
			code, out, errs := runAsAdtool(t, nil, name, h)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: adtool "+name) {
				t.Errorf("adtool %s %s: exit %d, stderr %q, stdout %.60q", name, h, code, errs, out)
			}
			if h == "-h" {
				all.WriteString("$ adtool " + name + " -h\n" + out + "\n")
			}
		}
	}
	if err := cliflag.CheckDoc("../../../README.md", "adtool -h", top, *update); err != nil {
		t.Error(err)
	}
	if err := cliflag.CheckDoc("../../../docs/ADTOOL.md", "adtool <command> -h", all.String(), *update); err != nil {
		t.Error(err)
	}
}

// TestBadValuesAreFatal: a bad ADTOOL_ value or flag stops the command
// with exit 2 and one line naming it.
func TestBadValuesAreFatal(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ADTOOL_TOP=lots"}, []string{"inspect", "x.snap"}, `adtool inspect: ADTOOL_TOP="lots" (--top): want an integer`},
		{nil, []string{"drain", "--timeout", "soon"}, `adtool drain: --timeout "soon": want a duration like 250ms, 5s or 1m30s`},
		{[]string{"ADTOOL_WAIT=yes"}, []string{"drain"}, `adtool drain: ADTOOL_WAIT="yes" (--wait): want true or false`},
		{nil, []string{"stagecheck", "--warn-fill-drop", "x"}, `adtool stagecheck: --warn-fill-drop "x": want a number`},
	} {
		code, out, errs := runAsAdtool(t, tc.env, tc.args...)
		wantCode := 2
		if tc.args[0] == "stagecheck" {
			wantCode = 3 // Nagios UNKNOWN
		}
		if code != wantCode || strings.TrimSpace(errs) != tc.want || out != "" {
			t.Errorf("%v %v: exit %d, stderr %q, stdout %q; want %d and %q", tc.env, tc.args, code, errs, out, wantCode, tc.want)
		}
	}
}
