package snapsource

import "testing"

// TestPin: a pinned version serves even when a newer file is present (a
// rollback), newer arrivals do not displace it, and unpinning returns to
// newest-wins.
func TestPin(t *testing.T) {
	dir := t.TempDir()
	age(t, writeGood(t, dir, ver(1), 100), writeGood(t, dir, ver(2), 200))
	s := newSource(t, Options{Dir: dir, Pin: ver(1)})
	if v := currentVersion(s); v != ver(1) {
		t.Fatalf("startup with pin %s serves %s", ver(1), v)
	}
	age(t, writeGood(t, dir, ver(3), 300))
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if v := currentVersion(s); v != ver(1) {
		t.Fatalf("a newer file displaced the pinned version: %s", v)
	}
	if swapped, err := s.Pin(ver(2)); err != nil || !swapped || currentVersion(s) != ver(2) {
		t.Fatalf("pin %s: swapped=%v err=%v serving %s", ver(2), swapped, err, currentVersion(s))
	}
	if swapped, _ := s.Pin(ver(9)); swapped || currentVersion(s) != ver(2) {
		t.Fatalf("pin of a missing version changed what serves: %s", currentVersion(s))
	}
	if _, err := s.Pin(""); err != nil || currentVersion(s) != ver(3) {
		t.Fatalf("unpinned: serving %s, err %v", currentVersion(s), err)
	}
}
