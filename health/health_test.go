package health

import (
	"encoding/json"
	"testing"
	"time"
)

func TestStatusLifecycle(t *testing.T) {
	s := New("test")
	now := time.Now()
	body, code := s.AppendJSON(nil, now)
	if code != 503 || !json.Valid(body) {
		t.Fatalf("no snapshot fn: %d %s", code, body)
	}
	loaded := false
	s.SnapshotFn = func() (Snapshot, bool) {
		return Snapshot{Version: "v1", Created: now.Add(-time.Hour)}, loaded
	}
	s.InFlightFn = func() int64 { return 3 }
	if _, code := s.AppendJSON(nil, now); code != 503 {
		t.Fatal("starting must be 503")
	}
	loaded = true
	body, code = s.AppendJSON(nil, now)
	var got struct {
		Status   string
		Snapshot struct {
			Version    string
			AgeSeconds int64 `json:"age_seconds"`
		}
		InFlight int64 `json:"in_flight"`
	}
	if err := json.Unmarshal(body, &got); err != nil || code != 200 {
		t.Fatalf("%d %s %v", code, body, err)
	}
	if got.Status != "ok" || got.Snapshot.Version != "v1" || got.Snapshot.AgeSeconds != 3600 || got.InFlight != 3 {
		t.Fatalf("%+v", got)
	}
	s.Drain()
	if body, code := s.AppendJSON(nil, now); code != 503 || s.Status() != Draining {
		t.Fatalf("draining: %d %s", code, body)
	}
}

func TestAppendExtra(t *testing.T) {
	s := New("test")
	s.SnapshotFn = func() (Snapshot, bool) { return Snapshot{Version: "v1", Created: time.Now()}, true }
	s.AppendExtra = func(dst []byte) []byte { return append(dst, `,"distribution":{"state":"idle"}`...) }
	body, code := s.AppendJSON(nil, time.Now())
	var got struct {
		Distribution struct{ State string }
	}
	if err := json.Unmarshal(body, &got); err != nil || code != 200 || got.Distribution.State != "idle" {
		t.Fatalf("%d %s %v", code, body, err)
	}
}
