//go:build race

package pacing

// raceEnabled: the race detector slows the fleet simulation ~10x, past the
// race pass's timeout; the plain pass runs it.
const raceEnabled = true
