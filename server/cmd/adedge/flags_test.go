package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/adedge/adedge/internal/cliflag"
)

var update = flag.Bool("update", false, "rewrite README.md's usage block from the flags (make readme)")

// runAsAdedge runs this test binary as adedge with args and extra
// environment (TestMain), returning its exit status and output.
func runAsAdedge(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	code, out, errs, err := cliflag.RunSelf("adedge", env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return code, out, errs
}

// TestBadEnvironmentIsFatal: the values issue 14 found silently dropped or
// zeroed now stop adedge before it binds anything: exit 2, one line naming
// the variable, the value and what it wants. One per type.
func TestBadEnvironmentIsFatal(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{`ADEDGE_READ_TIMEOUT=5 seconds`, `adedge: ADEDGE_READ_TIMEOUT="5 seconds" (--read-timeout): want a duration like 250ms, 5s or 1m30s`},
		{`ADEDGE_MAX_CONNS=lots`, `adedge: ADEDGE_MAX_CONNS="lots" (--max-conns): want an integer`},
		{`ADEDGE_PROFILE_TIMEOUT=abc`, `adedge: ADEDGE_PROFILE_TIMEOUT="abc" (--profile-timeout): want a duration like 250ms, 5s or 1m30s`},
		{`ADEDGE_STAGING_PERCENT=five`, `adedge: ADEDGE_STAGING_PERCENT="five" (--staging-percent): want a number`},
		{`ADEDGE_STAGING_MIRROR=yes`, `adedge: ADEDGE_STAGING_MIRROR="yes" (--staging-mirror): want true or false`},
		{`ADEDGE_STAGING_UPSTREAM=10.0.0.1:8080,,10.0.0.2:8080`, `adedge: ADEDGE_STAGING_UPSTREAM="10.0.0.1:8080,,10.0.0.2:8080" (--staging-upstream): want a comma-separated list without empty items`},
		{`ADEDGE_CAP_QUEUE=0`, `adedge: ADEDGE_CAP_QUEUE="0" (--cap-queue): want an integer >= 1`},
	} {
		code, out, errs := runAsAdedge(t, []string{tc.env}, "--snapshot-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
		if code != 2 || strings.TrimSpace(errs) != tc.want || out != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want exit 2 and %q", tc.env, code, errs, out, tc.want)
		}
	}
}

// TestOutOfRangeFlags: a value out of range is an error, never a default.
func TestOutOfRangeFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cap-queue", "0"}, `--cap-queue "0": want an integer >= 1`},
		{[]string{"--cap-workers", "0"}, `--cap-workers "0": want an integer >= 1`},
		{[]string{"--max-conns", "0"}, `--max-conns "0": want an integer >= 1`},
		{[]string{"--max-scan", "0"}, `--max-scan "0": want an integer >= 1`},
		{[]string{"--read-timeout", "0s"}, `--read-timeout "0s": want a duration > 0s`},
		{[]string{"--idle-timeout", "0s"}, `--idle-timeout "0s": want a duration > 0s`},
		{[]string{"--read-buffer", "10"}, `--read-buffer "10": want an integer >= 1024`},
		{[]string{"--snapshot-poll", "0s"}, `--snapshot-poll "0s": want a duration > 0s`},
		{[]string{"--token-ttl", "-1h"}, `--token-ttl "-1h": want a duration > 0s`},
		{[]string{"--peer-port", "70000"}, `--peer-port "70000": want an integer 0..65535`},
		{[]string{"--keep", "0"}, `--keep "0": want an integer >= 1`},
		{[]string{"--channel", "prod"}, `--channel "prod": want one of production, staging`},
		{[]string{"--env", "dev"}, `--env "dev": want one of production, staging`},
		{[]string{"--upload-rate", "fast"}, `--upload-rate "fast": want bytes/s like 50M, 32Mi or 0 (unlimited)`},
		{[]string{"--profiles", "redis://x"}, `--profiles "redis://x": want none, file:PATH or aerospike://HOST:PORT/NAMESPACE/SET`},
		{[]string{"--listen", "8080"}, `--listen "8080": want HOST:PORT addresses`},
		{[]string{"--manifest", "http://127.0.0.1:1/v1/manifest"}, `--manifest needs --pubkey`},
		{[]string{"--staging-salt", ""}, `--staging-salt "": want a non-empty value`},
	} {
		c := &config{}
		s := newFlags(c)
		s.Stderr = &bytes.Buffer{}
		err := s.Parse(append([]string{"--snapshot-dir", "x"}, tc.args...))
		if err == nil || err.Error() != tc.want || cliflag.ExitCode(err) != 2 {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestHelpExitsZero: help asked for is not an error.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		code, out, errs := runAsAdedge(t, nil, arg)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: adedge") || !strings.Contains(out, "\nServing:\n") {
			t.Errorf("%s: exit %d, stderr %q, stdout %.80q", arg, code, errs, out)
		}
	}
	if code, _, errs := runAsAdedge(t, nil); code != 2 || !strings.Contains(errs, "--snapshot-dir is required") {
		t.Errorf("no flags: exit %d, %q", code, errs)
	}
}

// TestReadmeUsage: README.md's adedge block is `adedge -h`.
func TestReadmeUsage(t *testing.T) {
	if err := cliflag.CheckDoc("../../../README.md", "adedge -h", newFlags(&config{}).Usage(), *update); err != nil {
		t.Fatal(err)
	}
}

// unitArgs returns the adedge arguments of the ExecStart in a systemd unit
// file: the continuation lines joined, the binary dropped.
func unitArgs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmd strings.Builder
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "ExecStart="); ok {
			in, line = true, rest
		}
		if !in {
			continue
		}
		more := strings.HasSuffix(line, "\\")
		cmd.WriteString(strings.TrimSuffix(line, "\\") + " ")
		if !more {
			break
		}
	}
	f := strings.Fields(cmd.String())
	if len(f) < 2 || !strings.HasSuffix(f[0], "/adedge") {
		t.Fatalf("%s: no ExecStart running adedge (got %q)", path, f)
	}
	return f[1:]
}

// TestSystemdUnitFlags: the unit ops installs starts an edge that parses
// (a flag renamed or out of range would stop every edge at its next
// restart with exit 2), and carries the production settings decided in
// docs/DECISIONS.md: the event log on, every second decision logged.
func TestSystemdUnitFlags(t *testing.T) {
	args := unitArgs(t, "../../../ops/systemd/adedge.service")
	c, err := parseFlags(args)
	if err != nil {
		t.Fatalf("ops/systemd/adedge.service ExecStart %q: %v", args, err)
	}
	if c.ev.dir == "" || c.ev.sampleAds != 0.5 {
		t.Errorf("unit: events dir %q, sample %v; want the log on, 0.5 of decisions", c.ev.dir, c.ev.sampleAds)
	}
}

// TestServeLoopFlags: the event loop refuses a remote profile store (its
// reads would starve behind the loop) and unknown loops; in-memory stores
// pass.
func TestServeLoopFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--serve-loop", "events", "--profiles", "aerospike://127.0.0.1:3000/test/profiles"},
		{"--serve-loop", "epoll"},
	} {
		if _, err := parseFlags(append([]string{"--snapshot-dir", "x"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	for _, args := range [][]string{
		{"--serve-loop", "events"},
		{"--serve-loop", "events", "--profiles", "file:/p.jsonl"},
		{"--serve-loop", "goroutines", "--profiles", "aerospike://127.0.0.1:3000/test/profiles"},
	} {
		if _, err := parseFlags(append([]string{"--snapshot-dir", "x"}, args...)); err != nil {
			t.Errorf("%v refused: %v", args, err)
		}
	}
}
