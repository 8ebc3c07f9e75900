package token

import (
	"encoding/binary"
	"slices"
)

// b64Alphabet is base64url's (RFC 4648 section 5), the alphabet of b64.
const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// b64Pairs maps 12 bits to their two base64url characters (first in the
// low byte): one table load per two characters instead of one per
// character. 8 KiB, built once.
var b64Pairs = func() (t [4096]uint16) {
	for i := range t {
		t[i] = uint16(b64Alphabet[i>>6]) | uint16(b64Alphabet[i&63])<<8
	}
	return t
}()

// appendB64 appends src in unpadded base64url, byte for byte what
// b64.AppendEncode writes (TestAppendB64 and FuzzAppendB64 hold it to
// that). Every token is encoded once per fill; this does six bytes per
// step (four pair loads, one 8-byte store) where encoding/base64 does
// three bytes and four single-character loads. It does not allocate when
// dst has room for the encoded length.
func appendB64(dst, src []byte) []byte {
	n, k := len(dst), b64.EncodedLen(len(src))
	dst = slices.Grow(dst, k)[:n+k]
	out := dst[n:]
	i, o := 0, 0
	// Whole 6-byte groups while 8 bytes can be loaded (two are unused).
	for ; i+8 <= len(src); i, o = i+6, o+8 {
		x := binary.BigEndian.Uint64(src[i:])
		w := uint64(b64Pairs[x>>52]) | uint64(b64Pairs[x>>40&0xfff])<<16 |
			uint64(b64Pairs[x>>28&0xfff])<<32 | uint64(b64Pairs[x>>16&0xfff])<<48
		binary.LittleEndian.PutUint64(out[o:], w)
	}
	// The rest three bytes at a time, then the last one or two.
	for ; i+3 <= len(src); i, o = i+3, o+4 {
		x := uint(src[i])<<16 | uint(src[i+1])<<8 | uint(src[i+2])
		p, q := b64Pairs[x>>12], b64Pairs[x&0xfff]
		out[o], out[o+1], out[o+2], out[o+3] = byte(p), byte(p>>8), byte(q), byte(q>>8)
	}
	switch len(src) - i {
	case 2:
		x := uint(src[i])<<16 | uint(src[i+1])<<8
		out[o], out[o+1], out[o+2] = b64Alphabet[x>>18], b64Alphabet[x>>12&63], b64Alphabet[x>>6&63]
	case 1:
		x := uint(src[i]) << 16
		out[o], out[o+1] = b64Alphabet[x>>18], b64Alphabet[x>>12&63]
	}
	return dst
}
