//go:build race

package main

// raceEnabled: the race detector slows the process 5-10x; timing tests that
// already ran without it skip.
const raceEnabled = true
