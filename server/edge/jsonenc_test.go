package edge

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// appendJSONStringBodyRef is the byte-at-a-time escaper appendJSONStringBody
// replaced: the reference its output must equal byte for byte.
func appendJSONStringBodyRef(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i]...)
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
		start = i + 1
	}
	return append(b, s[start:]...)
}

// checkJSONString fails t unless appendJSONString(s) equals the reference
// escaper's output, is a valid JSON string, decodes back to s (valid UTF-8)
// and contains no raw <, > or &.
func checkJSONString(t *testing.T, s string) {
	t.Helper()
	got := string(appendJSONStringBody(nil, s))
	if want := string(appendJSONStringBodyRef(nil, s)); got != want {
		t.Fatalf("%q: got %q, want %q", s, got, want)
	}
	if strings.ContainsAny(got, "<>&") {
		t.Fatalf("%q: raw HTML character in %q", s, got)
	}
	lit := `"` + got + `"`
	if !json.Valid([]byte(lit)) {
		t.Fatalf("%q: not a JSON string: %s", s, lit)
	}
	if !utf8.ValidString(s) {
		return // the decoder replaces invalid bytes with U+FFFD
	}
	var back string
	if err := json.Unmarshal([]byte(lit), &back); err != nil || back != s {
		t.Fatalf("%q: decodes to %q (%v)", s, back, err)
	}
}

func TestAppendJSONStringBody(t *testing.T) {
	for c := 0; c < 256; c++ {
		// Every byte at every position of a word and in the tail.
		for pos := 0; pos < 19; pos++ {
			checkJSONString(t, strings.Repeat("a", pos)+string(rune(c))+strings.Repeat("b", 18-pos))
			checkJSONString(t, strings.Repeat("a", pos)+string([]byte{byte(c)}))
		}
	}
	for _, s := range []string{
		"", "a", "cmp-0008166", "https://cdn.adedge.example/a/talumobile/cr-00040851_320x480.html",
		`</script><script>alert("x")</script>`, "tab\there\nnew\rline", "é日本\u2028x", "\x00\x01\x1f\x7f\xff",
		strings.Repeat(`"`, 17), strings.Repeat(`\`, 9) + "12345678",
	} {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONStringBody(f *testing.F) {
	for _, s := range []string{"", "cmp-1", `a"b\c<d>e&f`, "\x00\x7f\xff\xfe", "0123456789abcdef<"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkJSONString(t, s) })
}

func TestAppendJSONStringBodyAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	s := "https://cdn.adedge.example/a/talumobile/cr-00040851_320x480.html?a=<b>&c"
	if n := testing.AllocsPerRun(100, func() { buf = appendJSONStringBody(buf[:0], s) }); n != 0 {
		t.Errorf("%v allocs/op, want 0", n)
	}
}

// jsonFields are the strings one fill escapes (ids, the asset URL,
// adomain, experiment labels), as in BenchmarkServeAd's answers.
var jsonFields = []string{"cmp-0008166", "cr-00040851", "https://cdn.adedge.example/a/talumobile/cr-00040851_320x480.html",
	"talumobile.example", "exp-default", "control", "weight_cpi_x1.2"}

func BenchmarkAppendJSONStringBody(b *testing.B) {
	buf := make([]byte, 0, 512)
	n := 0
	for _, s := range jsonFields {
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for _, s := range jsonFields {
			buf = appendJSONStringBody(buf, s)
		}
	}
}
