package main

import (
	"fmt"
	"log"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/geo"
)

// sdkFlags are the OpenRTB endpoint's flags (issue 12): geo and privacy.
type sdkFlags struct {
	geoip, trustedProxies string
	tcfVendorID           int
}

func (f *sdkFlags) register(s *cliflag.Set) {
	g := s.Group("Requests, geo and privacy")
	g.String(&f.geoip, "geoip", "", "MaxMind-format country database (GeoIP2/GeoLite2 Country or City .mmdb): the country of a request that gives none; empty = such requests get 400")
	g.String(&f.trustedProxies, "trusted-proxies", "", "comma-separated balancer addresses/CIDRs whose X-Forwarded-For first hop is taken as the client IP for geo; empty = the peer address only",
		func(v string) string {
			if _, err := geo.ParseProxies(v); err != nil {
				return "addresses or CIDR networks, comma-separated (10.0.0.0/8,192.0.2.7)"
			}
			return ""
		})
	g.Int(&f.tcfVendorID, "tcf-vendor-id", 0, "this network's IAB TCF vendor id: GDPR requests personalise only with consent for it (0 = none registered: no GDPR personalisation; docs/PRIVACY.md)",
		cliflag.Between(0, 65535))
}

// start opens the geo database and sets the privacy policy in cfg; the
// returned func closes the database after the serving port stopped.
func (f *sdkFlags) start(cfg *edge.Config) (func(), error) {
	cfg.Privacy.VendorID = uint16(f.tcfVendorID)
	ps, err := geo.ParseProxies(f.trustedProxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	cfg.TrustedProxies = ps
	if f.geoip == "" {
		return func() {}, nil
	}
	db, err := geo.Open(f.geoip)
	if err != nil {
		return nil, fmt.Errorf("--geoip: %w", err)
	}
	log.Printf("geo: %s", f.geoip)
	cfg.Geo = db
	return func() { _ = db.Close() }, nil
}
