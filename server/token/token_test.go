package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testKey  = bytes.Repeat([]byte("k"), 32)
	otherKey = bytes.Repeat([]byte("o"), 32)
	// testNow is fixed so committed fuzz seeds stay valid forever.
	testNow = time.UnixMilli(1_800_000_000_000)
)

const testTTL = time.Hour

func sampleClaims() Claims {
	return Claims{
		Issued:      testNow.UnixMilli() - 1000,
		PriceMicros: 2_345_678,
		CapPeriod:   86400,
		Env:         1,
		Test:        3,
		Campaign:    []byte("cmp-000123"),
		Creative:    []byte("crv-998877"),
		Device:      []byte("6D92078A-8246-4BA4-AE5B-76104861E7DC"),
		Experiment:  []byte("exp-2026-11"),
		Variant:     []byte("treatment-b"),
		Snapshot:    []byte("20261122T053000Z-1a2b3c4d"),
		Placement:   []byte("plc-home-banner"),
		Privacy:     1, PrivacySignals: 0x41,
		Country: [2]byte{'D', 'E'}, OS: 2, DeviceType: 1, Format: 3,
	}
}

// sampleV1Claims is sampleClaims without what version 1 cannot carry.
func sampleV1Claims() Claims {
	c := sampleClaims()
	c.Version, c.Placement, c.Privacy, c.PrivacySignals, c.Country, c.OS, c.DeviceType, c.Format = V1, nil, 0, 0, [2]byte{}, 0, 0, 0
	return c
}

// v1Token is sampleV1Claims signed with testKey by the version-1 code
// (main before token v2): a token in flight across the upgrade.
const v1Token = "ARhMXBijAQAAzsojAAAAAACAUQEAAQMKY21wLTAwMDEyMwpjcnYtOTk4ODc3JDZEOTIwNzhBLTgyNDYtNEJBNC1BRTVCLTc2MTA0ODYxRTdEQwtleHAtMjAyNi0xMQt0cmVhdG1lbnQtYhkyMDI2MTEyMlQwNTMwMDBaLTFhMmIzYzRknFZSc6lqtQkS2gejplhHVw"

// TestV1TokensStillVerify: a token the version-1 signer issued verifies
// with its claims (Version 1, no v2 fields), re-encodes to the same bytes
// with Version V1, and keeps its MAC (the billing event id).
func TestV1TokensStillVerify(t *testing.T) {
	s := newSigner(t, testKey)
	var got Claims
	if err := s.Verify([]byte(v1Token), testNow, &got); err != nil {
		t.Fatal(err)
	}
	want := sampleV1Claims()
	if !sameClaims(&got, &want) || got.Version != V1 {
		t.Fatalf("v1 token: got %+v\nwant %+v", got, want)
	}
	again := mustAppend(t, s, &got)
	if string(again) != v1Token {
		t.Fatalf("v1 claims re-encode to\n%s\nwant\n%s", again, v1Token)
	}
	v2 := sampleClaims()
	tok2 := mustAppend(t, s, &v2)
	var got2 Claims
	if err := s.Verify(tok2, testNow, &got2); err != nil || got2.Version != Version || !sameClaims(&got2, &v2) {
		t.Fatalf("v2: %v %+v", err, got2)
	}
	if bytes.Equal(got2.MAC(), got.MAC()) {
		t.Fatal("v1 and v2 tokens of different claims share a MAC")
	}
	bad := sampleClaims()
	bad.Version = V1
	if _, err := s.Append(nil, &bad); !errors.Is(err, ErrInvalidClaims) {
		t.Fatalf("v1 with v2 fields: %v", err)
	}
}

func newSigner(t testing.TB, key []byte, opts ...Option) *Signer {
	t.Helper()
	s, err := NewSigner(key, testTTL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAppend(t testing.TB, s *Signer, c *Claims) []byte {
	t.Helper()
	tok, err := s.Append(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func sameClaims(a, b *Claims) bool {
	return a.Issued == b.Issued && a.PriceMicros == b.PriceMicros && a.CapPeriod == b.CapPeriod &&
		a.Env == b.Env && a.Test == b.Test &&
		bytes.Equal(a.Campaign, b.Campaign) && bytes.Equal(a.Creative, b.Creative) &&
		bytes.Equal(a.Device, b.Device) && bytes.Equal(a.Experiment, b.Experiment) &&
		bytes.Equal(a.Variant, b.Variant) && bytes.Equal(a.Snapshot, b.Snapshot) &&
		bytes.Equal(a.Placement, b.Placement) && a.Privacy == b.Privacy && a.PrivacySignals == b.PrivacySignals &&
		a.Country == b.Country && a.OS == b.OS && a.DeviceType == b.DeviceType && a.Format == b.Format
}

func TestRoundTrip(t *testing.T) {
	s := newSigner(t, testKey)
	full := sampleClaims()
	full.Campaign = bytes.Repeat([]byte("c"), MaxIDLen)
	full.Creative = bytes.Repeat([]byte("r"), MaxIDLen)
	full.Device = bytes.Repeat([]byte("d"), MaxDeviceID)
	full.Experiment = bytes.Repeat([]byte("e"), MaxIDLen)
	full.Variant = bytes.Repeat([]byte("v"), MaxIDLen)
	full.Snapshot = bytes.Repeat([]byte("s"), MaxIDLen)
	full.Placement = bytes.Repeat([]byte("p"), MaxIDLen)
	cases := map[string]Claims{
		"typical": sampleClaims(),
		"minimal": {Issued: testNow.UnixMilli()},
		"maximal": full,
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tok := mustAppend(t, s, &c)
			if len(tok) > MaxTokenLen {
				t.Fatalf("token is %d bytes, MaxTokenLen %d", len(tok), MaxTokenLen)
			}
			for _, ch := range tok {
				if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
					t.Fatalf("token has %q, not URL-safe: %s", ch, tok)
				}
			}
			var got Claims
			if err := s.Verify(tok, testNow, &got); err != nil {
				t.Fatal(err)
			}
			if !sameClaims(&got, &c) {
				t.Fatalf("got %+v\nwant %+v", got, c)
			}
		})
	}
	if n := len(mustAppend(t, s, &full)); n != MaxTokenLen {
		t.Errorf("maximal token is %d bytes, MaxTokenLen says %d", n, MaxTokenLen)
	}
}

func TestAppendAppends(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	prefix := []byte("https://edge/v1/imp?t=")
	out, err := s.Append(append([]byte(nil), prefix...), &c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], mustAppend(t, s, &c)) {
		t.Fatalf("Append did not append: %s", out)
	}
}

// isRejection reports whether err is one of the errors a damaged token may
// produce.
func isRejection(err error) bool {
	return errors.Is(err, ErrForged) || errors.Is(err, ErrMalformed)
}

func TestEveryBitFlipRejected(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := mustAppend(t, s, &c)
	var got Claims
	for i := range tok {
		for bit := range 8 {
			bad := append([]byte(nil), tok...)
			bad[i] ^= 1 << bit
			if err := s.Verify(bad, testNow, &got); !isRejection(err) {
				t.Fatalf("byte %d bit %d: %v (%s)", i, bit, err, bad)
			}
			if got.Campaign != nil || got.Issued != 0 {
				t.Fatalf("claims not cleared on error: %+v", got)
			}
		}
	}
}

func TestTruncatedAndExtended(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := mustAppend(t, s, &c)
	var got Claims
	for n := range len(tok) {
		if err := s.Verify(tok[:n], testNow, &got); !isRejection(err) {
			t.Fatalf("prefix of %d bytes: %v", n, err)
		}
	}
	for _, suffix := range []string{"A", "AA", "AAA", "AAAA", "=", "==", "\n", "\r\n"} {
		if err := s.Verify([]byte(string(tok)+suffix), testNow, &got); !isRejection(err) {
			t.Errorf("suffix %q: %v", suffix, err)
		}
	}
}

func TestNonCanonicalSpellingsRejected(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := string(mustAppend(t, s, &c))
	var got Claims
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	// 60 characters: one CR more still floors to the same decoded length,
	// which a length check alone missed (found by FuzzVerify).
	minTok := mustAppend(t, s, &Claims{Issued: testNow.UnixMilli()})
	for name, bad := range map[string]string{
		"newline inside": tok[:10] + "\n" + tok[10:],
		"CRLF at end":    tok + "\r\n",
		"minimal + CR":   string(minTok[:24]) + "\r" + string(minTok[24:]),
		"CR inside":      tok[:10] + "\r" + tok[10:],
		"padded":         base64.URLEncoding.EncodeToString(raw),
		"std alphabet":   base64.RawStdEncoding.EncodeToString(append([]byte{0xfb, 0xff}, raw...)),
		"empty":          "",
		"too long":       strings.Repeat("A", MaxTokenLen+4),
	} {
		if err := s.Verify([]byte(bad), testNow, &got); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// The unused low bits of the last character must be zero.
	last := tok[len(tok)-1]
	i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
	alt := tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i|1])
	if alt != tok {
		if err := s.Verify([]byte(alt), testNow, &got); err == nil {
			t.Error("token with non-zero trailing bits accepted")
		}
	}
}

func TestWrongKey(t *testing.T) {
	c := sampleClaims()
	tok := mustAppend(t, newSigner(t, otherKey), &c)
	var got Claims
	if err := newSigner(t, testKey).Verify(tok, testNow, &got); !errors.Is(err, ErrForged) {
		t.Fatalf("got %v, want ErrForged", err)
	}
}

func TestKeyRotation(t *testing.T) {
	old := newSigner(t, otherKey)
	rotated := newSigner(t, testKey, WithPreviousKey(otherKey))
	c := sampleClaims()
	var got Claims
	oldTok := mustAppend(t, old, &c)
	if err := rotated.Verify(oldTok, testNow, &got); err != nil || !sameClaims(&got, &c) {
		t.Fatalf("token from before the rotation: %v", err)
	}
	newTok := mustAppend(t, rotated, &c)
	if bytes.Equal(newTok, oldTok) {
		t.Fatal("rotated signer still signs with the previous key")
	}
	if err := newSigner(t, testKey).Verify(newTok, testNow, &got); err != nil {
		t.Fatalf("new token does not verify with the current key alone: %v", err)
	}
	if err := old.Verify(newTok, testNow, &got); !errors.Is(err, ErrForged) {
		t.Fatalf("old signer accepted new-key token: %v", err)
	}
	third := newSigner(t, bytes.Repeat([]byte("3"), 32), WithPreviousKey(testKey))
	if err := third.Verify(oldTok, testNow, &got); !errors.Is(err, ErrForged) {
		t.Fatalf("key from two rotations ago still accepted: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	c.Issued = testNow.UnixMilli()
	tok := mustAppend(t, s, &c)
	var got Claims
	if err := s.Verify(tok, testNow.Add(testTTL), &got); err != nil {
		t.Fatalf("at exactly ttl: %v", err)
	}
	if err := s.Verify(tok, testNow.Add(testTTL+time.Millisecond), &got); !errors.Is(err, ErrExpired) {
		t.Fatalf("past ttl: %v, want ErrExpired", err)
	}
	if got.Issued != 0 || got.Device != nil {
		t.Fatalf("claims not cleared on error: %+v", got)
	}
}

func TestFutureIssued(t *testing.T) {
	c := sampleClaims()
	c.Issued = testNow.UnixMilli()
	var got Claims
	s := newSigner(t, testKey)
	tok := mustAppend(t, s, &c)
	if err := s.Verify(tok, testNow.Add(-DefaultMaxSkew), &got); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	if err := s.Verify(tok, testNow.Add(-DefaultMaxSkew-time.Millisecond), &got); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("beyond skew: %v, want ErrNotYetValid", err)
	}
	strict := newSigner(t, testKey, WithMaxSkew(0))
	if err := strict.Verify(tok, testNow.Add(-time.Millisecond), &got); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("zero skew: %v, want ErrNotYetValid", err)
	}
}

func TestAppendRefusesBadClaims(t *testing.T) {
	s := newSigner(t, testKey)
	long := bytes.Repeat([]byte("x"), MaxIDLen+1)
	for name, mod := range map[string]func(*Claims){
		"campaign":   func(c *Claims) { c.Campaign = long },
		"creative":   func(c *Claims) { c.Creative = long },
		"device":     func(c *Claims) { c.Device = long[:MaxDeviceID+1] },
		"experiment": func(c *Claims) { c.Experiment = long },
		"variant":    func(c *Claims) { c.Variant = long },
		"snapshot":   func(c *Claims) { c.Snapshot = long },
		"env":        func(c *Claims) { c.Env = MaxEnv + 1 },
		"test":       func(c *Claims) { c.Test = MaxTest + 1 },
		"issued":     func(c *Claims) { c.Issued = 0 },
		"price":      func(c *Claims) { c.PriceMicros = -1 },
		"placement":  func(c *Claims) { c.Placement = long },
		"privacy":    func(c *Claims) { c.Privacy = MaxPrivacy + 1 },
		"country":    func(c *Claims) { c.Country = [2]byte{'d', 'e'} },
		"version":    func(c *Claims) { c.Version = 3 },
	} {
		c := sampleClaims()
		mod(&c)
		dst := []byte("prefix")
		out, err := s.Append(dst, &c)
		if !errors.Is(err, ErrInvalidClaims) {
			t.Errorf("%s: err %v, want ErrInvalidClaims", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the field", name, err)
		}
		if string(out) != "prefix" {
			t.Errorf("%s: dst changed to %q", name, out)
		}
	}
}

func TestNewSignerValidates(t *testing.T) {
	if _, err := NewSigner(testKey[:31], testTTL); err == nil {
		t.Error("31-byte key accepted")
	}
	if _, err := NewSigner(testKey, 0); err == nil {
		t.Error("zero ttl accepted")
	}
	if _, err := NewSigner(testKey, testTTL, WithPreviousKey(otherKey[:16])); err == nil {
		t.Error("short previous key accepted")
	}
	if _, err := NewSigner(testKey, testTTL, WithMaxSkew(-time.Second)); err == nil {
		t.Error("negative skew accepted")
	}
}

func TestSignerCopiesKey(t *testing.T) {
	key := append([]byte(nil), testKey...)
	s := newSigner(t, key)
	c := sampleClaims()
	before := mustAppend(t, s, &c)
	key[0] ^= 0xff
	if after := mustAppend(t, s, &c); !bytes.Equal(before, after) {
		t.Fatal("changing the caller's key slice changed the signer")
	}
}

func TestVerifyReusesClaimsBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := mustAppend(t, s, &c)
	var got Claims
	if err := s.Verify(tok, testNow, &got); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := s.Verify(tok, testNow, &got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Verify: %v allocs per call, want 0", allocs)
	}
	dst := make([]byte, 0, MaxTokenLen)
	allocs = testing.AllocsPerRun(200, func() {
		var err error
		if dst, err = s.Append(dst[:0], &c); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Append: %v allocs per call, want 0", allocs)
	}
	bad := append([]byte(nil), tok...)
	bad[5] ^= 1
	allocs = testing.AllocsPerRun(200, func() { _ = s.Verify(bad, testNow, &got) })
	if allocs != 0 {
		t.Errorf("Verify of a forged token: %v allocs per call, want 0", allocs)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newSigner(t, testKey, WithPreviousKey(otherKey))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := sampleClaims()
			c.PriceMicros = int64(g)
			var got Claims
			var buf []byte
			for range 500 {
				var err error
				buf, err = s.Append(buf[:0], &c)
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.Verify(buf, testNow, &got); err != nil || got.PriceMicros != int64(g) {
					t.Errorf("goroutine %d: %v %d", g, err, got.PriceMicros)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0x9c}, 40)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hexKey := GenerateKey()
	for name, c := range map[string]struct {
		content []byte
		want    []byte
	}{
		"hex":         {[]byte(hex.EncodeToString(hexKey)), hexKey},
		"hex newline": {[]byte("  " + strings.ToUpper(hex.EncodeToString(hexKey)) + "\n"), hexKey},
		"raw":         {raw, raw},
	} {
		got, err := LoadKey(write(name, c.content))
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %x, %v; want %x", name, got, err, c.want)
		}
	}
	for name, content := range map[string][]byte{
		"short hex": []byte(strings.Repeat("ab", 31)),
		"odd hex":   []byte(strings.Repeat("a", 65)),
		"short raw": []byte("not hex and too short"),
		"empty":     nil,
	} {
		if k, err := LoadKey(write(name, content)); err == nil {
			t.Errorf("%s: accepted as %x", name, k)
		}
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestGenerateKey(t *testing.T) {
	a, b := GenerateKey(), GenerateKey()
	if len(a) != MinKeySize || bytes.Equal(a, b) {
		t.Fatalf("GenerateKey: %x %x", a, b)
	}
	if _, err := NewSigner(a, testTTL); err != nil {
		t.Fatal(err)
	}
}

// FuzzVerify: Verify never panics, only returns its sentinels, and anything
// it accepts is exactly what Append would produce for the decoded claims.
func FuzzVerify(f *testing.F) {
	s := newSigner(f, testKey, WithPreviousKey(otherKey))
	prev := newSigner(f, otherKey)
	c := sampleClaims()
	f.Add(mustAppend(f, s, &c))
	f.Add(mustAppend(f, prev, &c))
	minimal := Claims{Issued: testNow.UnixMilli() - 5}
	f.Add(mustAppend(f, s, &minimal))
	f.Add([]byte(v1Token))
	f.Add([]byte(""))
	f.Add([]byte(strings.Repeat("A", 60)))
	f.Fuzz(func(t *testing.T, tok []byte) {
		var got Claims
		err := s.Verify(tok, testNow, &got)
		if err != nil {
			if !isRejection(err) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrNotYetValid) {
				t.Fatalf("unexpected error %v", err)
			}
			if !sameClaims(&got, &Claims{}) {
				t.Fatalf("claims not cleared on error: %+v", got)
			}
			return
		}
		if got.Env > MaxEnv || got.Test > MaxTest || len(got.Device) > MaxDeviceID || got.Issued <= 0 || got.Privacy > MaxPrivacy ||
			got.Version != V1 && got.Version != Version {
			t.Fatalf("accepted out-of-range claims %+v", got)
		}
		again, err := s.Append(nil, &got)
		if err != nil {
			t.Fatalf("accepted claims do not re-encode: %v", err)
		}
		if !bytes.Equal(again, tok) {
			// Tokens signed with the previous key re-encode under the current one.
			var viaPrev Claims
			if prev.Verify(tok, testNow, &viaPrev) != nil {
				t.Fatalf("re-encoded to a different token:\n%s\n%s", tok, again)
			}
			if again, _ = prev.Append(nil, &got); !bytes.Equal(again, tok) {
				t.Fatalf("re-encoded to a different token:\n%s\n%s", tok, again)
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	s := newSigner(b, testKey)
	c := sampleClaims()
	dst := make([]byte, 0, MaxTokenLen)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = s.Append(dst[:0], &c)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkVerify(b *testing.B) {
	s := newSigner(b, testKey)
	c := sampleClaims()
	tok := mustAppend(b, s, &c)
	var got Claims
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Verify(tok, testNow, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyForged is the cost of refusing a forged token under key
// rotation (two MACs): what a flood of bad /v1/imp requests costs.
func BenchmarkVerifyForged(b *testing.B) {
	s := newSigner(b, testKey, WithPreviousKey(otherKey))
	c := sampleClaims()
	tok := mustAppend(b, s, &c)
	tok[7] ^= 1
	var got Claims
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Verify(tok, testNow, &got); !errors.Is(err, ErrForged) {
			b.Fatal(err)
		}
	}
}

// The MAC is the billing event id: stable for one token, distinct for
// different claims, gone after a failed Verify.
func TestMACIsTheEventID(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := mustAppend(t, s, &c)
	var a, b Claims
	if err := s.Verify(tok, testNow, &a); err != nil {
		t.Fatal(err)
	}
	first := append([]byte(nil), a.MAC()...)
	if err := s.Verify(tok, testNow, &b); err != nil {
		t.Fatal(err)
	}
	if len(first) != MACSize || !bytes.Equal(first, b.MAC()) {
		t.Fatalf("MAC %x then %x", first, b.MAC())
	}
	c2 := sampleClaims()
	c2.Issued++
	if err := s.Verify(mustAppend(t, s, &c2), testNow, &b); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, b.MAC()) {
		t.Fatal("different claims, same MAC")
	}
	if s.Verify([]byte("garbage-token-garbage-token-garbage-token-garbage-token-garbage"), testNow, &b) == nil || b.MAC() != nil {
		t.Fatalf("MAC after a failed Verify: %x", b.MAC())
	}
}

// TestSignedButOverLimits: a payload whose MAC matches (a buggy or old
// signer holding the key) but whose id is over its limit, or whose labels
// are out of range, is refused as malformed: nothing past the limits
// reaches counters or events.
func TestSignedButOverLimits(t *testing.T) {
	s := newSigner(t, testKey)
	sign := func(payload []byte) []byte {
		m := hmac.New(sha256.New, testKey)
		m.Write(payload)
		return []byte(base64.RawURLEncoding.EncodeToString(append(payload, m.Sum(nil)[:MACSize]...)))
	}
	fixed := func(ver byte) []byte {
		p := make([]byte, fixedSize)
		p[0] = ver
		binary.LittleEndian.PutUint64(p[1:], uint64(testNow.UnixMilli()-1))
		if ver == V1 {
			p = p[:fixedSizeV1]
		}
		return p
	}
	ids := func(p []byte, n int, first []byte) []byte {
		p = append(p, byte(len(first)))
		p = append(p, first...)
		for i := 1; i < n; i++ {
			p = append(p, 0)
		}
		return p
	}
	long := bytes.Repeat([]byte("c"), MaxIDLen+1)
	good := ids(fixed(Version), numIDs, []byte("c"))
	var c Claims
	if err := s.Verify(sign(good), testNow, &c); err != nil {
		t.Fatalf("the well-formed hand-made token: %v", err)
	}
	privacy := ids(fixed(Version), numIDs, nil)
	privacy[23] = MaxPrivacy + 1
	country := ids(fixed(Version), numIDs, nil)
	country[26], country[27] = 'u', 's'
	for name, p := range map[string][]byte{
		"v2 campaign over MaxIDLen": ids(fixed(Version), numIDs, long),
		"v1 campaign over MaxIDLen": ids(fixed(V1), numIDsV1, long),
		"privacy level":             privacy,
		"lower-case country":        country,
		"v1 with a seventh id":      ids(fixed(V1), numIDs, nil),
		"version 3":                 ids(append([]byte{3}, fixed(Version)[1:]...), numIDs, nil),
	} {
		if err := s.Verify(sign(p), testNow, &c); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
