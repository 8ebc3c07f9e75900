//go:build race

package adreq

const raceEnabled = true
