package loadgen

import (
	"strings"
	"testing"
)

// parseAll feeds msg to a fresh parser in pieces of size step and
// returns the status, whether it completed (at EOF if need be), the bytes
// left after it, and the first error.
func parseAll(msg string, step int) (status int, done bool, extra int, err error) {
	var p respParser
	p.reset()
	b := []byte(msg)
	for len(b) > 0 && !done && err == nil {
		n := min(step, len(b))
		var x int
		done, x, err = p.feed(b[:n])
		if done {
			extra = x + len(b) - n
		}
		b = b[n:]
	}
	if !done && err == nil && p.eof() {
		done = true
	}
	return p.status, done, extra, err
}

// TestRespParser: the framings servers use (Content-Length, chunked with
// extensions and trailers, no body for 204/304, body to EOF, interim
// 100) complete exactly at their end however the bytes are split, and
// broken framings are errors, not hangs.
func TestRespParser(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		status    int
		done      bool
		extra     int
		err       bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello", 200, true, 0, false},
		{"lower-case header, no reason", "HTTP/1.1 200\r\ncontent-length:   3 \r\n\r\nabc", 200, true, 0, false},
		{"zero length", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, true, 0, false},
		{"204 has no body", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 204, true, 0, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n", 200, true, 0, false},
		{"interim 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno", 503, true, 0, false},
		{"to EOF", "HTTP/1.0 200 OK\r\n\r\nanything at all", 200, true, 0, false},
		{"bytes after the answer", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA", 200, true, 5, false},
		{"cut short", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 200, false, 0, false},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", 0, false, 0, true},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", 0, false, 0, true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 200, false, 0, true},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 200, false, 0, true},
		{"header without colon", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", 200, false, 0, true},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 200, false, 0, true},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxY", 200, false, 0, true},
		{"header too large", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", 0, false, 0, true},
	} {
		for _, step := range []int{1, 2, 7, 1 << 20} {
			st, done, extra, err := parseAll(c.msg, step)
			if (err != nil) != c.err || done != c.done || (!c.err && (st != c.status || extra != c.extra)) {
				t.Errorf("%s (pieces of %d): status %d done %v extra %d err %v; want %d %v %d err %v",
					c.name, step, st, done, extra, err, c.status, c.done, c.extra, c.err)
			}
		}
	}
}

// TestRespParserReuse: a parser reset between answers on one connection
// reads each of them, and keeps its header buffer (no allocation per
// answer once grown).
func TestRespParserReuse(t *testing.T) {
	var p respParser
	msg := []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
	allocs := testing.AllocsPerRun(100, func() {
		p.reset()
		if done, _, err := p.feed(msg); !done || err != nil || p.status != 200 {
			t.Fatalf("done %v err %v status %d", done, err, p.status)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per answer, want 0", allocs)
	}
}

// FuzzRespParser: any bytes, split anywhere, never panic, and the split
// never changes the outcome.
func FuzzRespParser(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), 3)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 1)
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 x\r\n\r\n"), 9)
	f.Fuzz(func(t *testing.T, msg []byte, step int) {
		if step <= 0 || step > len(msg)+1 {
			step = len(msg) + 1
		}
		s1, d1, x1, e1 := parseAll(string(msg), len(msg)+1)
		s2, d2, x2, e2 := parseAll(string(msg), step)
		if s1 != s2 || d1 != d2 || x1 != x2 || (e1 == nil) != (e2 == nil) {
			t.Fatalf("whole: %d %v %d %v; in pieces of %d: %d %v %d %v", s1, d1, x1, e1, step, s2, d2, x2, e2)
		}
	})
}
