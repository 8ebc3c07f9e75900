// Package geotest writes small MaxMind-format country databases for tests
// and the demo, with maxmind/mmdbwriter.
package geotest

import (
	"fmt"
	"net"
	"os"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/adedge/adedge/internal/atomicfile"
)

// Write creates a GeoIP2-Country database at path mapping each CIDR
// network to its ISO country code ("203.0.113.0/24": "FR"). An empty code
// writes a record without a country (an anonymous proxy, say).
func Write(path string, nets map[string]string) error {
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoIP2-Country",
		RecordSize:              24,
		IncludeReservedNetworks: true, // tests use documentation ranges
	})
	if err != nil {
		return err
	}
	for cidr, cc := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return fmt.Errorf("geotest: %w", err)
		}
		rec := mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("XX")}}
		if cc != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(cc)}
		}
		if err := w.Insert(n, rec); err != nil {
			return fmt.Errorf("geotest: %s: %w", cidr, err)
		}
	}
	return atomicfile.Write(path, func(f *os.File) error {
		_, err := w.WriteTo(f)
		return err
	})
}
