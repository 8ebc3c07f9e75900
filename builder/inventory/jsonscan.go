package inventory

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a strict, allocation-light JSON reader over one buffer (one
// JSONL line, or the whole of experiments.json). It accepts exactly the JSON
// grammar of RFC 8259, plus these refusals that encoding/json does not make:
// strings must be valid UTF-8, and nesting is bounded by maxDepth.
//
// A syntax error is sticky: the first one is kept in synErr/synPos and every
// later call returns quickly, so decoders need not check after each step.
// Type mismatches are not syntax errors; decoders report them and skipValue.
type scanner struct {
	buf     []byte
	pos     int
	depth   int
	synErr  string // first syntax error, "" if none
	synPos  int    // byte offset of synErr
	scratch []byte // unescaped string contents, reused
}

// maxDepth bounds object/array nesting so hostile input cannot recurse deep.
const maxDepth = 64

func (s *scanner) reset(buf []byte) {
	s.buf, s.pos, s.depth, s.synErr, s.synPos = buf, 0, 0, "", 0
}

func (s *scanner) failed() bool { return s.synErr != "" }

func (s *scanner) fail(pos int, format string, args ...any) {
	if s.synErr == "" {
		s.synErr = fmt.Sprintf(format, args...)
		s.synPos = pos
	}
	s.pos = len(s.buf)
}

func (s *scanner) ws() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

// describe names the byte c for a syntax error.
func describe(c byte, atEnd bool) string {
	if atEnd {
		return "end of input"
	}
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (s *scanner) unexpected(what string) {
	if s.failed() {
		return
	}
	atEnd := s.pos >= len(s.buf)
	var c byte
	if !atEnd {
		c = s.buf[s.pos]
	}
	s.fail(s.pos, "expected %s, found %s", what, describe(c, atEnd))
}

// end checks that nothing but whitespace follows the top-level value.
func (s *scanner) end() {
	if s.failed() {
		return
	}
	if s.peek() != 0 || s.pos < len(s.buf) {
		s.fail(s.pos, "unexpected data after the JSON value (one object per line)")
	}
}

// null consumes a null literal if one is next.
func (s *scanner) null() bool {
	if s.peek() == 'n' {
		s.literal("null")
		return !s.failed()
	}
	return false
}

func (s *scanner) literal(lit string) {
	if len(s.buf)-s.pos >= len(lit) && string(s.buf[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return
	}
	s.fail(s.pos, "invalid literal (expected %s)", lit)
}

// beginObject consumes '{' if it is next and reports whether it was.
func (s *scanner) beginObject() bool { return s.open('{') }

// open consumes the bracket that opens an object or array if it is next,
// one level deeper (refused past maxDepth), and reports whether it was.
func (s *scanner) open(bracket byte) bool {
	if s.peek() != bracket {
		return false
	}
	if s.depth >= maxDepth {
		s.fail(s.pos, "nested deeper than %d levels", maxDepth)
		return false
	}
	s.depth++
	s.pos++
	return true
}

// nextKey advances to the next member of the current object and returns its
// key, with the ':' consumed. It returns false at the closing '}' (consumed)
// or on a syntax error. first must start true for each object. The key may
// alias scratch: use it before reading the value.
func (s *scanner) nextKey(first *bool) ([]byte, bool) {
	if s.failed() {
		return nil, false
	}
	c := s.peek()
	if *first {
		*first = false
		if c == '}' {
			s.pos++
			s.depth--
			return nil, false
		}
	} else {
		switch c {
		case '}':
			s.pos++
			s.depth--
			return nil, false
		case ',':
			s.pos++
			c = s.peek()
		default:
			s.unexpected("',' or '}' after object member")
			return nil, false
		}
	}
	if c != '"' {
		s.unexpected("a string (object key)")
		return nil, false
	}
	key, ok := s.str()
	if !ok {
		return nil, false
	}
	if s.peek() != ':' {
		s.unexpected("':' after object key")
		return nil, false
	}
	s.pos++
	return key, true
}

// beginArray consumes '[' if it is next and reports whether it was.
func (s *scanner) beginArray() bool { return s.open('[') }

// nextElem advances to the next array element; false at ']' (consumed) or
// on a syntax error. first must start true for each array.
func (s *scanner) nextElem(first *bool) bool {
	if s.failed() {
		return false
	}
	c := s.peek()
	if c == ']' && (*first) {
		*first = false
		s.pos++
		s.depth--
		return false
	}
	if *first {
		*first = false
		return true
	}
	switch c {
	case ']':
		s.pos++
		s.depth--
		return false
	case ',':
		s.pos++
		if s.peek() == ']' {
			s.unexpected("a value after ','")
			return false
		}
		return true
	}
	s.unexpected("',' or ']' after array element")
	return false
}

// str reads a string if one is next. The result aliases buf (no escapes) or
// scratch (escapes), so it is valid until the next str call.
func (s *scanner) str() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.pos
	s.pos++
	i := s.pos
	// Fast path: plain ASCII with no escapes.
	for i < len(s.buf) {
		c := s.buf[i]
		if c == '"' {
			out := s.buf[s.pos:i]
			s.pos = i + 1
			return out, true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		i++
	}
	s.scratch = append(s.scratch[:0], s.buf[s.pos:i]...)
	for i < len(s.buf) {
		c := s.buf[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return s.scratch, true
		case c < 0x20:
			s.fail(i, "control character 0x%02x in string (must be escaped)", c)
			return nil, false
		case c < 0x80:
			if c != '\\' {
				s.scratch = append(s.scratch, c)
				i++
				continue
			}
			if i+1 >= len(s.buf) {
				s.fail(i, "unterminated escape in string")
				return nil, false
			}
			e := s.buf[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				s.scratch = append(s.scratch, e)
			case 'b':
				s.scratch = append(s.scratch, '\b')
			case 'f':
				s.scratch = append(s.scratch, '\f')
			case 'n':
				s.scratch = append(s.scratch, '\n')
			case 'r':
				s.scratch = append(s.scratch, '\r')
			case 't':
				s.scratch = append(s.scratch, '\t')
			case 'u':
				r, ok := s.hex4(i)
				if !ok {
					return nil, false
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// A valid pair combines; anything else becomes U+FFFD,
					// as encoding/json does.
					r2 := rune(-1)
					if i+1 < len(s.buf) && s.buf[i] == '\\' && s.buf[i+1] == 'u' {
						if v, ok := s.hex4(i + 2); ok {
							r2 = v
						} else {
							return nil, false
						}
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				s.scratch = utf8.AppendRune(s.scratch, r)
			default:
				s.fail(i-2, "invalid escape %q in string", "\\"+string(e))
				return nil, false
			}
		default:
			r, size := utf8.DecodeRune(s.buf[i:])
			if r == utf8.RuneError && size <= 1 {
				s.fail(i, "invalid UTF-8 in string")
				return nil, false
			}
			s.scratch = append(s.scratch, s.buf[i:i+size]...)
			i += size
		}
	}
	s.fail(start, "unterminated string")
	return nil, false
}

func (s *scanner) hex4(i int) (rune, bool) {
	if i+4 > len(s.buf) {
		s.fail(i, "short \\u escape in string")
		return 0, false
	}
	var r rune
	for _, c := range s.buf[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			s.fail(i, "invalid \\u escape in string")
			return 0, false
		}
	}
	return r, true
}

// number reads a number literal if one is next, checking the JSON grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. integral reports that the
// literal has neither fraction nor exponent.
func (s *scanner) number() (lit []byte, integral, ok bool) {
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		return nil, false, false
	}
	start := s.pos
	i := s.pos
	b := s.buf
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		s.fail(i, "invalid number: expected a digit")
		return nil, false, false
	}
	integral = true
	if i < len(b) && b[i] == '.' {
		i++
		integral = false
		if digits() == 0 {
			s.fail(i, "invalid number: expected a digit after '.'")
			return nil, false, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		integral = false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.fail(i, "invalid number: expected a digit in the exponent")
			return nil, false, false
		}
	}
	s.pos = i
	return b[start:i], integral, true
}

// skipValue consumes any one JSON value (used after a type mismatch and for
// describing it).
func (s *scanner) skipValue() {
	switch c := s.peek(); {
	case c == '"':
		s.str()
	case c == '{':
		if !s.beginObject() {
			return
		}
		first := true
		for {
			if _, ok := s.nextKey(&first); !ok {
				return
			}
			s.skipValue()
		}
	case c == '[':
		if !s.beginArray() {
			return
		}
		first := true
		for s.nextElem(&first) {
			s.skipValue()
		}
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		s.number()
	default:
		s.unexpected("a JSON value")
	}
}

// skipDescribe consumes the next value and describes it for a type error:
// `string "abc"`, `number 1.5`, `an object`, ...
func (s *scanner) skipDescribe() string {
	c := s.peek()
	start := s.pos
	s.skipValue()
	if s.failed() {
		return "malformed value"
	}
	raw := s.buf[start:s.pos]
	switch {
	case c == '"':
		return "string " + preview(raw)
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "boolean " + string(raw)
	case c == 'n':
		return "null"
	}
	return "number " + preview(raw)
}

// preview shortens raw input for a message.
func preview(raw []byte) string {
	const max = 40
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}

// parseInt parses an integral JSON literal within [min, max].
func parseInt(lit []byte, min, max int64) (int64, bool) {
	neg := false
	i := 0
	if len(lit) > 0 && lit[0] == '-' {
		neg = true
		i = 1
	}
	if i == len(lit) {
		return 0, false
	}
	var u uint64
	for ; i < len(lit); i++ {
		d := uint64(lit[i] - '0')
		if d > 9 || u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	var v int64
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		v = int64(-u) // two's complement: exact for u <= 1<<63
	} else {
		if u > math.MaxInt64 {
			return 0, false
		}
		v = int64(u)
	}
	if v < min || v > max {
		return 0, false
	}
	return v, true
}
