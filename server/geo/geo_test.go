package geo

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/adedge/adedge/server/geo/geotest"
	"github.com/adedge/adedge/snapshot"
)

func testDB(t testing.TB) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "country.mmdb")
	err := geotest.Write(path, map[string]string{
		"203.0.113.0/24":  "FR",
		"198.51.100.0/24": "DE",
		"192.0.2.0/25":    "US",
		"192.0.2.128/25":  "",
		"2001:db8::/32":   "JP",
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func cc(t *testing.T, d *DB, ip string) string {
	t.Helper()
	c, ok := d.Country(netip.MustParseAddr(ip))
	if !ok {
		return ""
	}
	return snapshot.CountryCode(c)
}

func TestCountry(t *testing.T) {
	d := testDB(t)
	for ip, want := range map[string]string{
		"203.0.113.9":        "FR",
		"::ffff:203.0.113.9": "FR",
		"198.51.100.255":     "DE",
		"192.0.2.1":          "US",
		"192.0.2.200":        "", // a record without a country
		"2001:db8::1":        "JP",
		"10.1.2.3":           "", // not in the database
		"2001:dead::1":       "",
	} {
		for range 2 { // the second time from the cache
			if got := cc(t, d, ip); got != want {
				t.Errorf("%s: got %q want %q", ip, got, want)
			}
		}
	}
	if _, ok := d.Country(netip.Addr{}); ok {
		t.Error("zero address found")
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); err == nil {
		t.Error("opened garbage")
	}
	if _, err := Open(filepath.Join(dir, "missing.mmdb")); err == nil {
		t.Error("opened a missing file")
	}
}

// header is an X-Forwarded-For reader that returns v.
func header(v string) func() []byte { return func() []byte { return []byte(v) } }

func TestClientIP(t *testing.T) {
	ps, err := ParseProxies(" 10.0.0.0/8, 192.0.2.7 ,::1")
	if err != nil {
		t.Fatal(err)
	}
	lb, other := netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("198.51.100.1")
	cases := []struct {
		peer netip.Addr
		xff  string
		want string
	}{
		{lb, "203.0.113.9, 10.1.1.1", "203.0.113.9"},
		{lb, " 2001:db8::5 ", "2001:db8::5"},
		{netip.MustParseAddr("192.0.2.7"), "203.0.113.9", "203.0.113.9"},
		{netip.MustParseAddr("::ffff:10.2.2.2"), "203.0.113.9", "203.0.113.9"},
		{other, "203.0.113.9", "198.51.100.1"}, // not a balancer: header ignored
		{lb, "", "10.1.1.1"},
		{lb, "garbage, 203.0.113.9", "10.1.1.1"}, // only the first hop counts
		{lb, "fe80::1%eth0", "10.1.1.1"},
	}
	for _, c := range cases {
		if got := ClientIP(c.peer, ps, header(c.xff)).String(); got != c.want {
			t.Errorf("peer %v xff %q: got %s want %s", c.peer, c.xff, got, c.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "nope", "1.2.3.4/x"} {
		if _, err := ParseProxies(bad); err == nil {
			t.Errorf("ParseProxies(%q) accepted", bad)
		}
	}
	if ps, err := ParseProxies(""); err != nil || len(ps) != 0 {
		t.Errorf("empty: %v %v", ps, err)
	}
}

// TestClientIPReadsHeaderOnlyFromProxies: the header is not even looked
// up for a peer that is not a trusted proxy (every direct SDK request).
func TestClientIPReadsHeaderOnlyFromProxies(t *testing.T) {
	ps, _ := ParseProxies("10.0.0.0/8")
	reads := 0
	xff := func() []byte { reads++; return []byte("203.0.113.9") }
	if got := ClientIP(netip.MustParseAddr("198.51.100.1"), ps, xff); got.String() != "198.51.100.1" || reads != 0 {
		t.Errorf("untrusted peer: got %v after %d header reads, want the peer and 0", got, reads)
	}
	if got := ClientIP(netip.MustParseAddr("10.1.1.1"), ps, xff); got.String() != "203.0.113.9" || reads != 1 {
		t.Errorf("trusted peer: got %v after %d header reads, want the hop and 1", got, reads)
	}
}

func TestLookupAllocs(t *testing.T) {
	d := testDB(t)
	ps, _ := ParseProxies("10.0.0.0/8")
	peer, xff := netip.MustParseAddr("10.1.1.1"), []byte("203.0.113.9, 10.1.1.1")
	d.Country(ClientIP(peer, ps, func() []byte { return xff }))
	if n := testing.AllocsPerRun(200, func() {
		if _, ok := d.Country(ClientIP(peer, ps, func() []byte { return xff })); !ok {
			t.Fatal("not found")
		}
	}); n != 0 {
		t.Fatalf("%v allocs per lookup", n)
	}
}

func BenchmarkCountry(b *testing.B) {
	d := testDB(b)
	ip := netip.MustParseAddr("203.0.113.9")
	b.ReportAllocs()
	for b.Loop() {
		d.Country(ip)
	}
}

// FuzzLookup: any X-Forwarded-For value and peer bytes resolve to some
// address (or none) and look up without panicking.
func FuzzLookup(f *testing.F) {
	f.Add([]byte{10, 1, 1, 1}, "203.0.113.9, 10.1.1.1")
	f.Add([]byte{10, 0, 0, 1}, "2001:db8::1")
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, "::ffff:192.0.2.1")
	f.Add([]byte{}, "")
	d := testDB(f)
	ps, _ := ParseProxies("10.0.0.0/8")
	f.Fuzz(func(t *testing.T, peer []byte, xff string) {
		p, _ := netip.AddrFromSlice(peer)
		ip := ClientIP(p, ps, header(xff))
		if c, ok := d.Country(ip); ok && int(c) >= snapshot.NumCountries {
			t.Fatalf("country %d", c)
		}
		if a, err := ParseIP([]byte(xff)); err == nil {
			d.Country(a)
			if !a.IsValid() || a.Is4In6() {
				t.Fatalf("ParseIP(%q) = %v", xff, a)
			}
		}
	})
}
