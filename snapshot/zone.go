package snapshot

import (
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // budget days in IANA zones must not depend on the machine's tzdata
)

var zones sync.Map // name -> *time.Location or error

// LoadZone loads the IANA time zone a campaign names (CampaignPacing.TimeZone),
// once per name ("" = UTC): the builder validates with it, the edge paces with it.
// "Local" is refused: a budget day must not depend on the machine.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if v, ok := zones.Load(name); ok {
		if l, ok := v.(*time.Location); ok {
			return l, nil
		}
		return nil, v.(error)
	}
	var l *time.Location
	var err error
	if name == "Local" || len(name) > 64 {
		err = fmt.Errorf("%q is not an IANA time zone name (like Europe/Berlin)", name)
	} else if l, err = time.LoadLocation(name); err != nil {
		err = fmt.Errorf("unknown IANA time zone %q (want a name like America/New_York)", name)
	}
	if err != nil {
		zones.Store(name, err)
		return nil, err
	}
	zones.Store(name, l)
	return l, nil
}
