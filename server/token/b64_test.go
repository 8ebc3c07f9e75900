package token

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestAppendB64 compares appendB64 with encoding/base64 on every length up
// to well past the longest token, random and all-ones bytes, after a
// non-empty prefix.
func TestAppendB64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= maxRawSize+20; n++ {
		for _, fill := range []string{"random", "ones", "zeros"} {
			src := make([]byte, n)
			for i := range src {
				switch fill {
				case "random":
					src[i] = byte(r.Uint32())
				case "ones":
					src[i] = 0xff
				}
			}
			checkB64(t, src)
		}
	}
}

func checkB64(t *testing.T, src []byte) {
	t.Helper()
	want := b64.AppendEncode([]byte("prefix:"), src)
	got := appendB64([]byte("prefix:"), src)
	if !bytes.Equal(got, want) {
		t.Fatalf("%d bytes %x:\n got %s\nwant %s", len(src), src, got, want)
	}
	room := make([]byte, 3, 3+b64.EncodedLen(len(src)))
	if got := appendB64(room, src); &got[0] != &room[0] || !bytes.Equal(got[3:], want[7:]) {
		t.Fatalf("%d bytes: reallocated with room, or wrong: %s", len(src), got)
	}
}

func FuzzAppendB64(f *testing.F) {
	for _, s := range []string{"", "a", "ab", "abc", "abcdefgh", "\xff\xfe\xfd\xfc\xfb\xfa\xf9"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) { checkB64(t, src) })
}

func TestAppendB64Allocs(t *testing.T) {
	src := bytes.Repeat([]byte{0xa5}, maxRawSize)
	dst := make([]byte, 0, MaxTokenLen)
	if n := testing.AllocsPerRun(100, func() { dst = appendB64(dst[:0], src) }); n != 0 {
		t.Errorf("%v allocs/op, want 0", n)
	}
}

// BenchmarkB64 encodes a typical token's payload and MAC (173 bytes):
// appendB64 against encoding/base64.
func BenchmarkB64(b *testing.B) {
	src := bytes.Repeat([]byte{0x5a, 0xc3, 0x11}, 58)[:173]
	dst := make([]byte, 0, MaxTokenLen)
	b.Run("appendB64", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			dst = appendB64(dst[:0], src)
		}
	})
	b.Run("encoding-base64", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			dst = b64.AppendEncode(dst[:0], src)
		}
	})
}
