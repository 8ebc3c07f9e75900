package profiles

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Record is one line of a profiles.jsonl file:
//
//	{"device":"<id>","segments":["gamers",...],"installed_apps":["com.a.b",...]}
//
// installed_apps holds bundle ids; stores keep only their AppHash.
type Record struct {
	Device        string   `json:"device"`
	Segments      []string `json:"segments"`
	InstalledApps []string `json:"installed_apps"`
}

// MaxReportedProblems caps how many problems a ParseError lists, so a
// wrong file yields a readable error rather than millions of lines.
const MaxReportedProblems = 50

// maxLineBytes bounds one JSONL line; longer lines are refused.
const maxLineBytes = 16 << 20

// ParseError lists the problems found in a profiles.jsonl file, each as
// "path:line: message", capped at MaxReportedProblems.
type ParseError struct {
	Problems []string // the first MaxReportedProblems problems
	Total    int      // all problems found
}

func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "profiles: %d problem(s) in profiles file:\n", e.Total)
	b.WriteString(strings.Join(e.Problems, "\n"))
	if n := e.Total - len(e.Problems); n > 0 {
		fmt.Fprintf(&b, "\n... and %d more problem(s)", n)
	}
	return b.String()
}

// problems accumulates ParseError entries.
type problems struct {
	name string
	err  ParseError
}

func (p *problems) add(line int, format string, args ...any) {
	p.err.Total++
	if len(p.err.Problems) < MaxReportedProblems {
		p.err.Problems = append(p.err.Problems, fmt.Sprintf("%s:%d: ", p.name, line)+fmt.Sprintf(format, args...))
	}
}

func (p *problems) result() error {
	if p.err.Total == 0 {
		return nil
	}
	e := p.err
	return &e
}

// ReadJSONL reads a profiles.jsonl stream strictly: every non-blank line
// must be one JSON object with only the Record fields, a non-empty device
// and non-empty segment and bundle ids. Valid records are passed to fn in
// file order (rec is reused between calls; copy what you keep). All line
// problems are collected and returned as a *ParseError naming name:line; an
// error from fn or from reading stops at once and is returned as is.
func ReadJSONL(r io.Reader, name string, fn func(line int, rec *Record) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	probs := problems{name: name}
	var rec Record
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if msg := decodeRecord(b, &rec); msg != "" {
			probs.add(line, "%s", msg)
			continue
		}
		if err := fn(line, &rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			probs.add(line+1, "line longer than %d bytes", maxLineBytes)
			return probs.result()
		}
		return fmt.Errorf("profiles: read %s: %w", name, err)
	}
	return probs.result()
}

// decodeRecord parses one line into rec, returning a problem description
// or "" when the line is valid.
func decodeRecord(b []byte, rec *Record) string {
	*rec = Record{Segments: rec.Segments[:0], InstalledApps: rec.InstalledApps[:0]}
	if b[0] != '{' {
		return "not a JSON object"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "trailing data after JSON object"
	}
	if rec.Device == "" {
		return `missing or empty "device"`
	}
	for i, s := range rec.Segments {
		if s == "" {
			return fmt.Sprintf("segments[%d]: empty segment name", i)
		}
	}
	for i, s := range rec.InstalledApps {
		if s == "" {
			return fmt.Sprintf("installed_apps[%d]: empty bundle id", i)
		}
	}
	return ""
}

// jsonProblem turns encoding/json errors into short messages.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q: got JSON %s, want %s", te.Field, te.Value, te.Type)
		}
		return fmt.Sprintf("got JSON %s, want %s", te.Value, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of line"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
