package cliflag

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

type vals struct {
	d    time.Duration
	n    int
	n64  int64
	f    float64
	b    bool
	s    string
	list []string
	std  *int
}

func newTestSet(env map[string]string) (*Set, *vals, *bytes.Buffer, *bytes.Buffer) {
	v := &vals{}
	s := New("prog", "PROG_", "prog [flags]")
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	s.Getenv = func(k string) (string, bool) { x, ok := env[k]; return x, ok }
	g := s.Group("Things")
	g.Duration(&v.d, "read-timeout", 5*time.Second, "timeout", Above(time.Duration(0)))
	g.Int(&v.n, "cap-queue", 65536, "queue", AtLeast(1))
	g.Int64(&v.n64, "piece-length", 1<<18, "piece")
	g.Float(&v.f, "percent", 5, "share", Between(0.0, 100.0))
	g.Bool(&v.b, "mirror", false, "mirror")
	g.String(&v.s, "env", "production", "env", OneOf("production", "staging"))
	g.StringList(&v.list, "upstreams", nil, "ups", func(x string) string {
		if !strings.Contains(x, ":") {
			return "HOST:PORT addresses"
		}
		return ""
	})
	v.std = s.FlagSet.Int("plain", 7, "a flag of the standard library's kind")
	return s, v, &out, &errb
}

// TestEnvBadValuePerType: a bad environment value of each type stops the
// parse with the variable, the value and what it wants; exit status 2.
func TestEnvBadValuePerType(t *testing.T) {
	for _, tc := range []struct {
		env, value, want string
	}{
		{"PROG_READ_TIMEOUT", "5 seconds", `PROG_READ_TIMEOUT="5 seconds" (--read-timeout): want a duration like 250ms, 5s or 1m30s`},
		{"PROG_READ_TIMEOUT", "0s", `PROG_READ_TIMEOUT="0s" (--read-timeout): want a duration > 0s`},
		{"PROG_CAP_QUEUE", "lots", `PROG_CAP_QUEUE="lots" (--cap-queue): want an integer`},
		{"PROG_CAP_QUEUE", "0", `PROG_CAP_QUEUE="0" (--cap-queue): want an integer >= 1`},
		{"PROG_PIECE_LENGTH", "1.5", `PROG_PIECE_LENGTH="1.5" (--piece-length): want an integer`},
		{"PROG_PERCENT", "abc", `PROG_PERCENT="abc" (--percent): want a number`},
		{"PROG_PERCENT", "101", `PROG_PERCENT="101" (--percent): want a number 0..100`},
		{"PROG_MIRROR", "yes", `PROG_MIRROR="yes" (--mirror): want true or false`},
		{"PROG_ENV", "prod", `PROG_ENV="prod" (--env): want one of production, staging`},
		{"PROG_UPSTREAMS", "a:1,,b:2", `PROG_UPSTREAMS="a:1,,b:2" (--upstreams): want a comma-separated list without empty items`},
		{"PROG_UPSTREAMS", "a:1,b", `PROG_UPSTREAMS="a:1,b" (--upstreams): want a comma-separated list of HOST:PORT addresses ("b" is not)`},
		{"PROG_PLAIN", "x", `PROG_PLAIN="x" (--plain): want an integer`},
	} {
		s, _, out, errb := newTestSet(map[string]string{tc.env: tc.value})
		err := s.Parse(nil)
		if err == nil {
			t.Errorf("%s=%q accepted", tc.env, tc.value)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s=%q:\n got %q\nwant %q", tc.env, tc.value, err, tc.want)
		}
		if got := errb.String(); got != "prog: "+tc.want+"\n" {
			t.Errorf("stderr %q", got)
		}
		if out.Len() != 0 {
			t.Errorf("stdout %q: no usage dump on a bad value", out)
		}
		if ExitCode(err) != 2 {
			t.Errorf("exit %d", ExitCode(err))
		}
	}
}

// TestFlagBadValuePerType: the same refusals from the command line name
// the flag.
func TestFlagBadValuePerType(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--read-timeout", "5 seconds"}, `--read-timeout "5 seconds": want a duration like 250ms, 5s or 1m30s`},
		{[]string{"--cap-queue", "0"}, `--cap-queue "0": want an integer >= 1`},
		{[]string{"--percent=-1"}, `--percent "-1": want a number 0..100`},
		{[]string{"--mirror=maybe"}, `--mirror "maybe": want true or false`},
		{[]string{"--upstreams", ","}, `--upstreams ",": want a comma-separated list without empty items`},
		{[]string{"--plain", "x"}, `--plain "x": want an integer`},
	} {
		s, _, _, _ := newTestSet(nil)
		err := s.Parse(tc.args)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestGoodValues: values from both places land, and the command line wins
// over the environment.
func TestGoodValues(t *testing.T) {
	s, v, _, _ := newTestSet(map[string]string{
		"PROG_READ_TIMEOUT": "250ms", "PROG_CAP_QUEUE": "10", "PROG_PERCENT": "12.5", "PROG_MIRROR": "true",
		"PROG_ENV": "staging", "PROG_UPSTREAMS": " a:1 , b:2", "PROG_PLAIN": "9", "PROG_PIECE_LENGTH": "1024",
	})
	if err := s.Parse([]string{"--cap-queue", "20", "--mirror=false"}); err != nil {
		t.Fatal(err)
	}
	if v.d != 250*time.Millisecond || v.n != 20 || v.f != 12.5 || v.b || v.s != "staging" || *v.std != 9 || v.n64 != 1024 ||
		!reflect.DeepEqual(v.list, []string{"a:1", "b:2"}) {
		t.Fatalf("%+v", v)
	}
	s, v, _, _ = newTestSet(nil)
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if v.d != 5*time.Second || v.n != 65536 || v.f != 5 || v.s != "production" || v.list != nil || *v.std != 7 {
		t.Fatalf("defaults %+v", v)
	}
}

// TestHelpIsSuccess: -h, -help and --help print the grouped usage to
// stdout and exit 0.
func TestHelpIsSuccess(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help", "--h"} {
		s, _, out, errb := newTestSet(nil)
		err := s.Parse([]string{arg})
		if !errors.Is(err, flag.ErrHelp) || ExitCode(err) != 0 {
			t.Errorf("%s: %v", arg, err)
		}
		if errb.Len() != 0 {
			t.Errorf("%s: stderr %q", arg, errb)
		}
		for _, want := range []string{"usage: prog [flags]\n", "\nThings:\n", "  --read-timeout duration  ", "(default 5s)",
			"  --mirror  ", "\nOther flags:\n", "  --plain int", "PROG_FLAG_NAME"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, out)
			}
		}
	}
}

func TestRequireAndAfter(t *testing.T) {
	s, _, _, errb := newTestSet(nil)
	var dir string
	s.Group("Things").String(&dir, "dir", "", "a directory")
	s.Require("dir")
	if err := s.Parse(nil); err == nil || !strings.Contains(err.Error(), "--dir is required") || ExitCode(err) != 2 {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(errb.String(), "--dir is required") {
		t.Fatalf("stderr %q", errb)
	}
	s, _, _, _ = newTestSet(nil)
	s.After(func() error { return errors.New("--a needs --b") })
	if err := s.Parse(nil); err == nil || err.Error() != "--a needs --b" {
		t.Fatalf("%v", err)
	}
}

func TestUnknownFlag(t *testing.T) {
	s, _, out, _ := newTestSet(nil)
	err := s.Parse([]string{"--nope"})
	if err == nil || !strings.Contains(err.Error(), "-nope") || !strings.Contains(err.Error(), "prog -h") || ExitCode(err) != 2 {
		t.Fatalf("%v", err)
	}
	if out.Len() != 0 {
		t.Fatalf("usage dumped: %q", out)
	}
}
