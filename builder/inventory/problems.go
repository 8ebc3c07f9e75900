package inventory

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with the inventory, pinned to a file and a
// 1-based physical line (Line 0 means the whole file).
type Problem struct {
	File string // base name, e.g. "campaigns.jsonl"
	Line int
	Msg  string // "field.path: what is wrong, what was expected, what was got"
}

// String renders the problem as "file:line: msg" ("file: msg" for Line 0).
func (p Problem) String() string {
	if p.Line <= 0 {
		return p.File + ": " + p.Msg
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
}

// ValidationError is what Load returns when the inventory has any problem.
// Problems holds the first MaxProblems in file order (campaigns, creatives,
// placements, predictions, experiments), then line order; Total counts all.
type ValidationError struct {
	Problems []Problem
	Total    int
}

// Error lists every kept problem, one a line, and says how many were left
// out.
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	if more := e.Total - len(e.Problems); more > 0 {
		fmt.Fprintf(&b, "\n... and %d more (%d problems in total)", more, e.Total)
	}
	return b.String()
}

// collector gathers the problems of one file. It keeps only the
// MaxProblems smallest by (line, emission order), so memory stays bounded
// however broken the input, and counts every one.
type collector struct {
	file    string
	list    []entry
	total   int
	seq     int
	maxLine int // valid when trimmed: lines above it cannot make the cut
	trimmed bool
}

type entry struct {
	p   Problem
	seq int
}

func (c *collector) add(line int, msg string) {
	c.total++
	c.seq++
	if c.trimmed && len(c.list) >= MaxProblems && line >= c.maxLine {
		return
	}
	c.list = append(c.list, entry{Problem{c.file, line, msg}, c.seq})
	if len(c.list) >= 2*MaxProblems {
		c.trim()
	}
}

func (c *collector) addf(line int, format string, args ...any) {
	if c.trimmed && len(c.list) >= MaxProblems && line >= c.maxLine {
		c.total++
		c.seq++
		return
	}
	c.add(line, fmt.Sprintf(format, args...))
}

func (c *collector) trim() {
	slices.SortFunc(c.list, func(a, b entry) int {
		if a.p.Line != b.p.Line {
			return a.p.Line - b.p.Line
		}
		return a.seq - b.seq
	})
	if len(c.list) > MaxProblems {
		c.list = c.list[:MaxProblems]
		c.trimmed = true
		c.maxLine = c.list[MaxProblems-1].p.Line
	}
}

// mergeProblems returns nil when there is no problem.
func mergeProblems(cs ...*collector) error {
	total := 0
	var out []Problem
	for _, c := range cs {
		total += c.total
		c.trim()
		for _, e := range c.list {
			if len(out) < MaxProblems {
				out = append(out, e.p)
			}
		}
	}
	if total == 0 {
		return nil
	}
	return &ValidationError{Problems: out, Total: total}
}
