package publish

import "github.com/adedge/adedge/snapshot/distrib"

var parseRateForTest = distrib.ParseRate
