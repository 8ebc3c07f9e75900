// Package cliflag is the flag handling of every adedge binary: a
// flag.FlagSet whose flags can also come from the environment
// (PREFIX_FLAG_NAME), whose bad values (from either place) stop the program
// with a message naming the variable or flag, the value and what it wants,
// whose range checks run at parse time instead of turning a bad value into
// a default, whose -h/--help is a successful exit, and whose usage text is
// grouped by area.
//
// The standard library's flag package prints its own message and the whole
// usage on a bad value and cannot say where a value came from;
// peterbourgon/ff reads the environment but names neither what a value
// should look like nor groups flags (docs/DECISIONS.md).
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Set is a flag.FlagSet with environment overrides, parse-time checks and
// grouped usage. The embedded FlagSet's own methods (fs.String, fs.Int...)
// still work: such flags get the environment and the type's message too,
// and show in the usage under "Other flags".
type Set struct {
	*flag.FlagSet
	name     string
	envPref  string
	synopsis string
	about    string
	groups   []*Group
	grouped  map[string]bool
	err      error // the first bad value seen by a checked flag
	source   string
	required []string
	after    []func() error
	// Stdout and Stderr are where help and errors go (tests swap them).
	Stdout, Stderr io.Writer
	// Getenv reads the environment (tests swap it).
	Getenv func(string) (string, bool)
}

// New is an empty Set for the command name (as printed: "adedge",
// "adtool gen"); envPrefix ("ADEDGE_") is put before a flag's name in
// capitals with dashes as underscores to find its variable, empty for no
// environment. synopsis is the usage line after "usage: ".
func New(name, envPrefix, synopsis string) *Set {
	s := &Set{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), name: name, envPref: envPrefix,
		synopsis: synopsis, grouped: map[string]bool{}, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.LookupEnv}
	s.FlagSet.SetOutput(io.Discard)
	s.FlagSet.Usage = func() {}
	return s
}

// About sets the paragraph printed under the usage line.
func (s *Set) About(text string) { s.about = text }

// EnvName is the environment variable of a flag ("" without a prefix).
func (s *Set) EnvName(flagName string) string {
	if s.envPref == "" {
		return ""
	}
	return s.envPref + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse reads the environment, then args (a flag given on the command line
// wins). Help asked for prints the usage to Stdout and returns
// flag.ErrHelp; any other problem is printed to Stderr as one line and
// returned. ExitCode maps the result to the process's exit status.
func (s *Set) Parse(args []string) error {
	err := s.parse(args)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		s.WriteUsage(s.Stdout)
	default:
		fmt.Fprintf(s.Stderr, "%s: %v\n", s.name, err)
	}
	return err
}

// Require makes flags mandatory: Parse refuses to go on without them.
func (s *Set) Require(names ...string) { s.required = append(s.required, names...) }

// After adds a check that runs once the flags are parsed, for rules across
// flags; its error is reported like a bad value.
func (s *Set) After(check func() error) { s.after = append(s.after, check) }

func (s *Set) parse(args []string) error {
	if err := s.parseValues(args); err != nil {
		return err
	}
	for _, n := range s.required {
		if f := s.Lookup(n); f != nil && f.Value.String() == "" {
			return fmt.Errorf("--%s is required (run '%s -h' for the flags)", n, s.name)
		}
	}
	for _, c := range s.after {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Set) parseValues(args []string) error {
	s.wrapAll()
	if s.envPref != "" {
		var err error
		s.VisitAll(func(f *flag.Flag) {
			env := s.EnvName(f.Name)
			v, ok := s.Getenv(env)
			if !ok || err != nil {
				return
			}
			s.source = fmt.Sprintf("%s=%q (--%s)", env, v, f.Name)
			if e := f.Value.Set(v); e != nil {
				err = s.takeErr(e)
			}
		})
		if err != nil {
			return err
		}
	}
	s.source = ""
	if err := s.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if s.err != nil {
			return s.takeErr(err)
		}
		return fmt.Errorf("%v (run '%s -h' for the flags)", err, s.name)
	}
	return nil
}

func (s *Set) takeErr(fallback error) error {
	if s.err != nil {
		err := s.err
		s.err = nil
		return err
	}
	return fallback
}

// ExitCode is the exit status for Parse's result: 0 for help asked for, 2
// for a usage error.
func ExitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// checked wraps every flag's Value so a bad value, from the environment or
// the command line, becomes one message naming where it came from.
type checked struct {
	flag.Value
	name string
	set  *Set
}

func (c *checked) Set(v string) error {
	err := c.Value.Set(v)
	if err == nil {
		return nil
	}
	where := c.set.source
	if where == "" {
		where = fmt.Sprintf("--%s %q", c.name, v)
	}
	if c.set.err == nil {
		c.set.err = fmt.Errorf("%s: want %s", where, want(c.Value, err))
	}
	return err
}

func (c *checked) IsBoolFlag() bool {
	b, ok := c.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (c *checked) Get() any {
	if g, ok := c.Value.(flag.Getter); ok {
		return g.Get()
	}
	return c.Value.String()
}

func (s *Set) wrapAll() {
	s.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(*checked); !ok {
			f.Value = &checked{Value: f.Value, name: f.Name, set: s}
		}
	})
}

// wantErr is a check's refusal: its text is what the value should be.
type wantErr string

func (e wantErr) Error() string { return string(e) }

// want says what a flag's value should look like, from the check that
// refused it or else from its type.
func want(v flag.Value, err error) string {
	var w wantErr
	if errors.As(err, &w) {
		return string(w)
	}
	if d, ok := v.(interface{ want() string }); ok {
		return d.want()
	}
	g, ok := v.(flag.Getter)
	if !ok {
		return err.Error()
	}
	switch g.Get().(type) {
	case time.Duration:
		return wantDuration
	case int, int64, uint, uint64:
		return wantInt
	case float64:
		return wantFloat
	case bool:
		return wantBool
	}
	return err.Error()
}

const (
	wantDuration = "a duration like 250ms, 5s or 1m30s"
	wantInt      = "an integer"
	wantFloat    = "a number"
	wantBool     = "true or false"
)

// Check refuses a parsed value that is out of range: it returns what the
// value should be ("> 0"), or "" when the value is fine.
type Check[T any] func(T) string

// Ordered is what range checks compare.
type Ordered interface {
	~int | ~int64 | ~float64
}

// AtLeast refuses values below lo.
func AtLeast[T Ordered](lo T) Check[T] {
	return func(v T) string {
		if v < lo {
			return fmt.Sprintf(">= %v", lo)
		}
		return ""
	}
}

// Above refuses values at or below lo.
func Above[T Ordered](lo T) Check[T] {
	return func(v T) string {
		if v <= lo {
			return fmt.Sprintf("> %v", lo)
		}
		return ""
	}
}

// Between refuses values outside lo..hi.
func Between[T Ordered](lo, hi T) Check[T] {
	return func(v T) string {
		if v < lo || v > hi {
			return fmt.Sprintf("%v..%v", lo, hi)
		}
		return ""
	}
}

// OneOf refuses strings not in the list.
func OneOf(allowed ...string) Check[string] {
	return func(v string) string {
		for _, a := range allowed {
			if v == a {
				return ""
			}
		}
		return "one of " + strings.Join(allowed, ", ")
	}
}

// NonEmpty refuses an empty string.
func NonEmpty() Check[string] {
	return func(v string) string {
		if v == "" {
			return "a non-empty value"
		}
		return ""
	}
}

// HostPort refuses an address without a port ("HOST:PORT", ":PORT").
func HostPort(v string) string {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return "HOST:PORT addresses"
	}
	return ""
}

// value is a typed flag value with checks; noun names the type in a
// refusal ("an integer >= 1"), kind says what a value that does not parse
// should have looked like, typ is its placeholder in the usage text.
type value[T any] struct {
	p           *T
	parse       func(string) (T, error)
	format      func(T) string
	checks      []Check[T]
	noun, kind  string
	typ         string
	isBool      bool
	itemChecked bool // a list whose parse ran the checks per item
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		var w wantErr
		if errors.As(err, &w) {
			return w
		}
		return wantErr(v.kind)
	}
	if !v.itemChecked {
		for _, c := range v.checks {
			if w := c(x); w != "" {
				if v.noun != "" && !strings.HasPrefix(w, "one of") && !strings.HasPrefix(w, "a ") {
					w = v.noun + " " + w
				}
				return wantErr(w)
			}
		}
	}
	*v.p = x
	return nil
}

func (v *value[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return v.format(*v.p)
}

// Get is the parsed value (flag.Getter).
func (v *value[T]) Get() any { return *v.p }

// IsBoolFlag lets --name stand alone for a bool.
func (v *value[T]) IsBoolFlag() bool { return v.isBool }

func (v *value[T]) want() string     { return v.kind }
func (v *value[T]) typeName() string { return v.typ }

// Group is one area of a Set's flags in the usage text ("Serving:",
// "Profiles:"...). Its methods define a flag the way flag.FlagSet's Var
// methods do, with checks applied at parse time.
type Group struct {
	set   *Set
	title string
	names []string
}

// Group returns the set's group with this title, made on first use; groups
// print in the order first asked for.
func (s *Set) Group(title string) *Group {
	for _, g := range s.groups {
		if g.title == title {
			return g
		}
	}
	g := &Group{set: s, title: title}
	s.groups = append(s.groups, g)
	return g
}

func define[T any](g *Group, v *value[T], def T, name, usage string) {
	*v.p = def
	g.set.FlagSet.Var(v, name, usage)
	g.names = append(g.names, name)
	g.set.grouped[name] = true
}

// String defines a string flag.
func (g *Group) String(p *string, name, def, usage string, checks ...Check[string]) {
	define(g, &value[string]{p: p, parse: func(s string) (string, error) { return s, nil },
		format: func(s string) string { return s }, checks: checks, noun: "", kind: "a string", typ: "string"}, def, name, usage)
}

// Duration defines a time.Duration flag.
func (g *Group) Duration(p *time.Duration, name string, def time.Duration, usage string, checks ...Check[time.Duration]) {
	define(g, &value[time.Duration]{p: p, parse: time.ParseDuration,
		format: time.Duration.String, checks: checks, noun: "a duration", kind: wantDuration, typ: "duration"}, def, name, usage)
}

// Int defines an int flag.
func (g *Group) Int(p *int, name string, def int, usage string, checks ...Check[int]) {
	define(g, &value[int]{p: p, parse: func(s string) (int, error) { n, err := strconv.ParseInt(s, 0, strconv.IntSize); return int(n), err },
		format: strconv.Itoa, checks: checks, noun: "an integer", kind: wantInt, typ: "int"}, def, name, usage)
}

// Int64 defines an int64 flag.
func (g *Group) Int64(p *int64, name string, def int64, usage string, checks ...Check[int64]) {
	define(g, &value[int64]{p: p, parse: func(s string) (int64, error) { return strconv.ParseInt(s, 0, 64) },
		format: func(n int64) string { return strconv.FormatInt(n, 10) }, checks: checks, noun: "an integer", kind: wantInt, typ: "int"}, def, name, usage)
}

// Float defines a float64 flag.
func (g *Group) Float(p *float64, name string, def float64, usage string, checks ...Check[float64]) {
	define(g, &value[float64]{p: p, parse: func(s string) (float64, error) { return strconv.ParseFloat(s, 64) },
		format: func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }, checks: checks, noun: "a number", kind: wantFloat, typ: "float"}, def, name, usage)
}

// Bool defines a bool flag (--name alone is true).
func (g *Group) Bool(p *bool, name string, def bool, usage string) {
	define(g, &value[bool]{p: p, parse: strconv.ParseBool, format: strconv.FormatBool, kind: wantBool, isBool: true}, def, name, usage)
}

// StringList defines a comma-separated list flag; items are trimmed, an
// empty item ("a,,b") is refused and each check sees one item. An empty
// value is the empty list.
func (g *Group) StringList(p *[]string, name string, def []string, usage string, checks ...Check[string]) {
	parse := func(s string) ([]string, error) {
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		var out []string
		for _, it := range strings.Split(s, ",") {
			it = strings.TrimSpace(it)
			if it == "" {
				return nil, errors.New("empty item")
			}
			for _, c := range checks {
				if w := c(it); w != "" {
					return nil, wantErr(fmt.Sprintf("a comma-separated list of %s (%q is not)", w, it))
				}
			}
			out = append(out, it)
		}
		return out, nil
	}
	define(g, &value[[]string]{p: p, parse: parse, format: func(l []string) string { return strings.Join(l, ",") },
		kind: "a comma-separated list without empty items", typ: "list", itemChecked: true}, def, name, usage)
}

// WriteUsage prints the usage line, the about text and every flag by group.
func (s *Set) WriteUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", s.synopsis)
	if s.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(s.about, "\n"))
	}
	type row struct{ left, right string }
	var sections [][]row
	var titles []string
	add := func(title string, names []string) {
		var rows []row
		for _, n := range names {
			f := s.Lookup(n)
			typ := typeName(f)
			_, usage := flag.UnquoteUsage(f)
			left := "--" + f.Name
			if typ != "" {
				left += " " + typ
			}
			if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" {
				usage += fmt.Sprintf(" (default %s)", d)
			}
			rows = append(rows, row{left, usage})
		}
		if len(rows) > 0 {
			titles = append(titles, title)
			sections = append(sections, rows)
		}
	}
	for _, g := range s.groups {
		add(g.title, g.names)
	}
	var other []string
	s.VisitAll(func(f *flag.Flag) {
		if !s.grouped[f.Name] {
			other = append(other, f.Name)
		}
	})
	title := "Other flags"
	if len(s.groups) == 0 {
		title = "Flags"
	}
	add(title, other)
	width := 0
	for _, rows := range sections {
		for _, r := range rows {
			width = max(width, len(r.left))
		}
	}
	for i, rows := range sections {
		fmt.Fprintf(w, "\n%s:\n", titles[i])
		for _, r := range rows {
			fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, r.right)
		}
	}
	if s.envPref != "" {
		fmt.Fprintf(w, "\nEvery flag can also be set as %sFLAG_NAME (capitals, dashes as underscores;\nthe command line wins); a bad value from either stops the program (exit 2).\n", s.envPref)
	}
}

// Usage is WriteUsage as a string.
func (s *Set) Usage() string {
	var b strings.Builder
	s.WriteUsage(&b)
	return b.String()
}

func innerValue(v flag.Value) flag.Value {
	if c, ok := v.(*checked); ok {
		return c.Value
	}
	return v
}

// typeName is a flag's placeholder in the usage: a `name` in backquotes
// in its usage text, else its type ("" for a bool).
func typeName(f *flag.Flag) string {
	v := innerValue(f.Value)
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	if strings.Contains(f.Usage, "`") {
		name, _ := flag.UnquoteUsage(f)
		return name
	}
	if t, ok := v.(interface{ typeName() string }); ok {
		return t.typeName()
	}
	name, _ := flag.UnquoteUsage(&flag.Flag{Name: f.Name, Usage: f.Usage, Value: v})
	return name
}
