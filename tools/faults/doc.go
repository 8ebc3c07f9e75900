// Package faults holds the edge's fault drills (`make faults`; a short form
// runs in `make test`). Each drill starts real adedge processes on
// loopback, drives them with the open-loop load generator, injects one
// fault (a profile store 10x slower than its deadline or gone, a corrupt
// file in the snapshot directory, a connection storm, ...) and asserts
// what an operator is promised: every request is still answered (an ad or
// a clean no-fill), server-side p99 stays bounded, and the degradation is
// visible in /health and /metrics.
//
// The billing drill (TestKill9ExactlyOnce) SIGKILLs the edge under pixel
// load and checks ClickHouse holds every acknowledged impression once.
//
// ADEDGE_FAULTS=full runs the long form: longer phases and the full
// 50,000-connection storm.
package faults
