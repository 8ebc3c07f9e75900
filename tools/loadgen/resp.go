package loadgen

import (
	"bytes"
	"errors"
)

// respParser reads one HTTP/1.1 response at a time from a keep-alive
// connection, fed with whatever each read returned. It keeps only the
// header block (and a chunk-size line); body bytes are counted and
// dropped, so a response costs no allocation once the buffers have grown
// to the largest header seen.
type respParser struct {
	state    uint8
	buf      []byte // the header block so far, or a chunk-size / trailer line
	status   int
	remain   int64 // body bytes (or chunk bytes) still to come
	close    bool  // the server said Connection: close
	untilEOF bool  // no length: the body runs to the end of the connection
	got      int   // bytes fed for this response (0: nothing arrived yet)
}

const (
	rsHeaders   uint8 = iota
	rsBody            // Content-Length body, remain bytes to go
	rsEOFBody         // body until the connection closes
	rsChunkSize       // reading a chunk-size line into buf
	rsChunkData       // remain bytes of chunk data
	rsChunkCRLF       // the CRLF after a chunk's data, remain bytes of it
	rsTrailer         // trailer lines after the last chunk, until an empty one
	rsDone
)

const (
	maxHeaderBytes = 64 << 10
	maxLineBytes   = 4 << 10
)

var (
	errBadStatus   = errors.New("malformed status line")
	errBadHeader   = errors.New("malformed header")
	errBadLength   = errors.New("malformed Content-Length")
	errBadChunk    = errors.New("malformed chunk")
	errHeaderLarge = errors.New("response header too large")
	errEOF         = errors.New("connection closed before the answer")
)

func (p *respParser) reset() {
	*p = respParser{buf: p.buf[:0]}
}

// feed consumes b. It returns done when the response is complete, with
// extra the bytes of b after its end (a well-behaved server sends none:
// only one request is in flight per connection).
func (p *respParser) feed(b []byte) (done bool, extra int, err error) {
	p.got += len(b)
	for len(b) > 0 {
		switch p.state {
		case rsHeaders:
			from := max(0, len(p.buf)-3)
			p.buf = append(p.buf, b...)
			i := bytes.Index(p.buf[from:], []byte("\r\n\r\n"))
			if i < 0 {
				if len(p.buf) > maxHeaderBytes {
					return false, 0, errHeaderLarge
				}
				return false, 0, nil
			}
			end := from + i + 4
			if end > maxHeaderBytes {
				return false, 0, errHeaderLarge
			}
			rest := len(p.buf) - end // bytes of b past the header block
			if err := p.header(p.buf[:end]); err != nil {
				return false, 0, err
			}
			b = b[len(b)-rest:]
			if p.status < 200 { // 1xx: an interim answer, the real one follows
				p.buf = p.buf[:0]
				p.state = rsHeaders
			}
		case rsBody:
			n := min(int64(len(b)), p.remain)
			p.remain -= n
			b = b[n:]
			if p.remain == 0 {
				p.state = rsDone
			}
		case rsEOFBody:
			return false, 0, nil
		case rsChunkSize, rsTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				p.buf = append(p.buf, b...)
				if len(p.buf) > maxLineBytes {
					return false, 0, errBadChunk
				}
				return false, 0, nil
			}
			p.buf = append(p.buf, b[:i+1]...)
			b = b[i+1:]
			line := bytes.TrimRight(p.buf, "\r\n")
			if len(p.buf) < 2 || p.buf[len(p.buf)-2] != '\r' {
				return false, 0, errBadChunk
			}
			p.buf = p.buf[:0]
			if p.state == rsTrailer {
				if len(line) == 0 {
					p.state = rsDone
				}
				continue
			}
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j]
			}
			n, ok := parseHex(bytes.TrimSpace(line))
			if !ok {
				return false, 0, errBadChunk
			}
			if n == 0 {
				p.state = rsTrailer
			} else {
				p.state, p.remain = rsChunkData, n
			}
		case rsChunkData:
			n := min(int64(len(b)), p.remain)
			p.remain -= n
			b = b[n:]
			if p.remain == 0 {
				p.state, p.remain = rsChunkCRLF, 2
			}
		case rsChunkCRLF:
			want := "\r\n"[2-p.remain]
			if b[0] != want {
				return false, 0, errBadChunk
			}
			b = b[1:]
			if p.remain--; p.remain == 0 {
				p.state = rsChunkSize
			}
		case rsDone:
			return true, len(b), nil
		}
	}
	return p.state == rsDone, 0, nil
}

// eof says whether the connection's end completes the response (a body
// without a length) or cuts it off.
func (p *respParser) eof() bool { return p.state == rsEOFBody || p.state == rsDone }

// header parses the status line and the headers that frame the body.
func (p *respParser) header(h []byte) error {
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	// HTTP/1.x SSS[ reason]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return errBadStatus
	}
	st := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errBadStatus
		}
		st = st*10 + int(c-'0')
	}
	if st < 100 || st > 599 {
		return errBadStatus
	}
	p.status = st
	length, chunked := int64(-1), false
	p.close = line[7] == '0' // HTTP/1.0 closes unless it says keep-alive
	for len(rest) > 2 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, val, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(name) == 0 {
			return errBadHeader
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseDec(val)
			if !ok || (length >= 0 && n != length) {
				return errBadLength
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(val, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(val, []byte("close")) {
				p.close = true
			} else if bytes.EqualFold(val, []byte("keep-alive")) {
				p.close = false
			}
		}
	}
	switch {
	case st < 200:
	case st == 204 || st == 304:
		p.state = rsDone
	case chunked:
		p.state = rsChunkSize
	case length == 0:
		p.state = rsDone
	case length > 0:
		p.state, p.remain = rsBody, length
	default:
		p.state, p.untilEOF, p.close = rsEOFBody, true, true
	}
	p.buf = p.buf[:0]
	return nil
}

func parseDec(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int64(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
