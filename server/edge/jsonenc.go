package edge

import (
	"encoding/binary"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringBody(b, s)
	return append(b, '"')
}

// SWAR constants: one bit or byte value in every byte of a uint64.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// escapeMask is non-zero when one of the 8 bytes in x (little-endian) is
// a control character, '"', '\\', '<', '>' or '&': eight bytes tested in
// a dozen word operations instead of six comparisons per byte. '<' (0x3c)
// and '>' (0x3e) differ only in bit 1, '"' (0x22) and '&' (0x26) only in
// bit 2, so setting that bit makes one zero-byte test catch both. A byte
// whose high bit is set is never flagged (UTF-8 passes through). The
// zero-byte test's borrow can flag a byte above a true match, which only
// sends an already flagged word to the byte loop.
func escapeMask(x uint64) uint64 {
	return (x-lsb*0x20)&^x&msb | zeroByte(x^(lsb*'\\')) | zeroByte((x|lsb*0x02)^(lsb*'>')) | zeroByte((x|lsb*0x04)^(lsb*'&'))
}

// zeroByte has the high bit set in (at least) the lowest zero byte of v.
func zeroByte(v uint64) uint64 { return (v - lsb) &^ v & msb }

// appendJSONStringBody appends s escaped for the inside of a JSON string.
// Besides quotes, backslashes and control characters it escapes <, > and &
// so a response pasted into HTML cannot close a script tag. It runs for
// every id and URL of every answer: clean 8-byte words are skipped whole
// (escapeMask; a tail is tested as the string's last, overlapping word),
// only a word with something to escape is scanned byte by byte.
func appendJSONStringBody(b []byte, s string) []byte {
	start, i := 0, 0
	for i < len(s) {
		if n := len(s) - i; n >= 8 || len(s) >= 8 {
			j := i
			if n < 8 {
				j = len(s) - 8 // the tail as the last word: its first bytes are clean already
			}
			if escapeMask(binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[j:]), 8))) == 0 {
				i = j + 8
				continue
			}
		}
		c := s[i]
		i++
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i-1]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i
	}
	return append(b, s[start:]...)
}

// appendHex64 appends v as 16 lower-case hex digits.
func appendHex64(b []byte, v uint64) []byte {
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hexDigits[(v>>uint(i))&0xf])
	}
	return b
}
