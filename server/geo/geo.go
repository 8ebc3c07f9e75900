// Package geo finds a request's country from its client IP: the peer
// address, or the first X-Forwarded-For hop when the peer is one of the
// operator's balancers (--trusted-proxies), looked up in a MaxMind-format
// database (--geoip FILE.mmdb, GeoIP2/GeoLite2 Country or City) read with
// oschwald/maxminddb-golang.
//
// A lookup allocates nothing once warm: the database maps many networks
// to a few hundred distinct records, so each record's data offset is
// decoded once and its country index cached.
package geo

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/adedge/adedge/snapshot"
)

// DB is an open country database. Safe for concurrent use.
type DB struct {
	r     *maxminddb.Reader
	mu    sync.Mutex                         // serialises cache writers
	cache atomic.Pointer[map[uintptr]uint16] // record offset -> country index, or noCountry
}

const noCountry = 0xFFFF

// maxCache bounds the offset cache; a Country database has ~250 records,
// a City one more, and past the bound lookups decode without caching.
const maxCache = 1 << 16

// Open maps path and checks it answers country lookups.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip %s: %w", path, err)
	}
	t := r.Metadata.DatabaseType
	if !strings.Contains(t, "Country") && !strings.Contains(t, "City") {
		_ = r.Close()
		return nil, fmt.Errorf("geoip %s: database type %q has no country (want a Country or City database)", path, t)
	}
	d := &DB{r: r}
	m := map[uintptr]uint16{}
	d.cache.Store(&m)
	return d, nil
}

// Close unmaps the database; no lookup may run after it.
func (d *DB) Close() error { return d.r.Close() }

// record is the part of a GeoIP2 record the edge reads.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
}

// Country returns the snapshot country index of ip.
func (d *DB) Country(ip netip.Addr) (uint16, bool) {
	if !ip.IsValid() {
		return 0, false
	}
	res := d.r.Lookup(ip.Unmap())
	if res.Err() != nil || !res.Found() {
		return 0, false
	}
	off := res.Offset()
	if c, ok := (*d.cache.Load())[off]; ok {
		return c, c != noCountry
	}
	var rec record
	c := uint16(noCountry)
	if res.Decode(&rec) == nil {
		if idx, ok := snapshot.CountryIndex(rec.Country.ISOCode); ok {
			c = idx
		}
	}
	d.mu.Lock()
	old := *d.cache.Load()
	if len(old) < maxCache {
		m := make(map[uintptr]uint16, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[off] = c
		d.cache.Store(&m)
	}
	d.mu.Unlock()
	return c, c != noCountry
}

// Proxies is the set of balancer networks whose X-Forwarded-For is believed.
type Proxies []netip.Prefix

// ParseProxies reads a comma-separated list of addresses and CIDR
// networks ("10.0.0.0/8,192.0.2.7"); empty means none.
func ParseProxies(s string) (Proxies, error) {
	var ps Proxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
			}
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		a = a.Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}

// Contains reports whether a is one of the proxies.
func (ps Proxies) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP is the address a request came from: the first hop of
// X-Forwarded-For when peer is a trusted proxy and the hop parses, else
// peer. A client cannot choose its country by sending the header itself.
// xff reads the header only once peer is known trusted: finding a header
// costs a scan of the request's headers, on every ad request.
func ClientIP(peer netip.Addr, trusted Proxies, xff func() []byte) netip.Addr {
	peer = peer.Unmap()
	if !trusted.Contains(peer) {
		return peer
	}
	h := xff()
	if len(h) == 0 {
		return peer
	}
	if i := bytes.IndexByte(h, ','); i >= 0 {
		h = h[:i]
	}
	h = bytes.TrimSpace(h)
	if a, err := ParseIP(h); err == nil {
		return a
	}
	return peer
}

// ParseIP parses a textual IPv4 or IPv6 address (device.ip, an
// X-Forwarded-For hop) without allocating; zones are refused.
func ParseIP(b []byte) (netip.Addr, error) {
	if len(b) == 0 || len(b) > 45 || bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, errBadIP
	}
	a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(b), len(b)))
	if err != nil {
		return netip.Addr{}, errBadIP
	}
	return a.Unmap(), nil
}

var errBadIP = fmt.Errorf("not an IP address")
