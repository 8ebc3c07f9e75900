package abtest

import (
	"encoding/json"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Slots is the bucketing resolution: a device's slot is
// xxhash64(salt + ":" + device) mod Slots, so shares are in 0.01% units.
const Slots = 10000

// MaxTests is how many A/B tests an experiment set may run at once (the
// token and the report rows carry the test index in 2 bits).
const MaxTests = 3

// Shards is the number of user shards rows are split by:
// shard = xxhash64(device) mod Shards. Per-shard means give the report a
// user-level variance estimate.
const Shards = 64

// Test labels used for the two control groups.
const (
	ControlTest       = "control"
	ControlVariant    = "control"
	UnassignedVariant = "unassigned" // requests without a device id
)

// Test is one A/B test of an experiment set (experiments.json, shipped in
// the snapshot's experiments section).
type Test struct {
	ID      string             `json:"id"`
	Variant string             `json:"variant"`
	ShareBP uint32             `json:"share_bp"`
	Params  map[string]float64 `json:"params"`
}

// Set is the experiment set as the snapshot stores it.
type Set struct {
	ID    string `json:"id"`
	Salt  string `json:"salt"`
	Tests []Test `json:"tests"`
}

// ParseSet decodes and checks an experiment set from a snapshot. The builder
// refuses bad sets with file:line; this is the edge's last line of defence
// against a snapshot written by something else.
func ParseSet(b []byte) (Set, error) {
	var s Set
	if err := json.Unmarshal(b, &s); err != nil {
		return Set{}, fmt.Errorf("experiment set: %w", err)
	}
	return s, s.Validate()
}

// SnapshotBucketer compiles the experiment set a snapshot carries. It
// always returns a usable Bucketer: for a set that does not parse or
// validate (the builder refuses those; a snapshot written by something else
// may carry one) everyone is control under the set's id, and err says why.
// The edge and adtool lookup both bucket through it, so they agree.
func SnapshotBucketer(js []byte, defaults Params) (*Bucketer, error) {
	set, err := ParseSet(js)
	if err == nil {
		var b *Bucketer
		if b, err = NewBucketer(set, defaults); err == nil {
			return b, nil
		}
	}
	var id struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(js, &id)
	return compile(Set{ID: id.ID, Salt: "invalid"}, defaults), err
}

// TestIndex is the Assignment.Test of the test named id: 0 for "control",
// false when the set has no such test.
func (b *Bucketer) TestIndex(id string) (uint8, bool) {
	if id == ControlTest {
		return 0, true
	}
	for i := range b.set.Tests {
		if b.set.Tests[i].ID == id {
			return uint8(i + 1), true
		}
	}
	return 0, false
}

// Assignment is where one request's device falls.
type Assignment struct {
	// Test is 0 for control (and unassigned), 1..3 for the set's tests.
	Test uint8
	// Unassigned is set for requests without a device id (control, but
	// not randomised: reports keep them out of comparisons).
	Unassigned bool
	// Shard is xxhash64(device) mod Shards (0 when unassigned).
	Shard uint8
	// Slot is the A/B slot, 0..Slots-1.
	Slot uint16
}

// Bucketer assigns devices to tests. It is immutable: build one per
// experiment set (per snapshot) and share it across goroutines.
type Bucketer struct {
	set    Set
	salted saltedKey
	bounds [MaxTests]uint32
	n      int
	params [MaxTests + 1]Params // index = Assignment.Test
}

// NewBucketer compiles a validated set against the control defaults.
func NewBucketer(s Set, defaults Params) (*Bucketer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return compile(s, defaults), nil
}

// compile builds the Bucketer of a set already checked (or the all-control
// fallback, which has no tests to check).
func compile(s Set, defaults Params) *Bucketer {
	b := &Bucketer{set: s, n: len(s.Tests)}
	b.salted = newSaltedKey(s.Salt)
	b.params[0] = defaults
	cum := uint32(0)
	for i, t := range s.Tests {
		cum += t.ShareBP
		b.bounds[i] = cum
		b.params[i+1] = defaults.Apply(t.Params)
	}
	return b
}

func saltedDigest(salt string) xxhash.Digest {
	d := xxhash.New()
	_, _ = d.WriteString(salt)
	_, _ = d.WriteString(":")
	return *d
}

// saltedKey hashes salt+":"+device: in one stack buffer when it fits
// (one-shot Sum64 is about twice as fast as a streaming digest), else by
// continuing the digest that already holds salt+":".
type saltedKey struct {
	prefix []byte // salt + ":"
	digest xxhash.Digest
}

func newSaltedKey(salt string) saltedKey {
	return saltedKey{prefix: []byte(salt + ":"), digest: saltedDigest(salt)}
}

func (k *saltedKey) slot(device []byte) uint16 {
	var buf [192]byte
	if len(k.prefix)+len(device) <= len(buf) {
		n := copy(buf[:], k.prefix)
		n += copy(buf[n:], device)
		return uint16(xxhash.Sum64(buf[:n]) % Slots)
	}
	d := k.digest
	_, _ = d.Write(device)
	return uint16(d.Sum64() % Slots)
}

// Slot is xxhash64(salt + ":" + device) mod Slots, the reference form of
// the rule (the Bucketer precomputes the salt's hash state).
func Slot(salt string, device []byte) uint16 {
	k := newSaltedKey(salt)
	return k.slot(device)
}

// Shard is the user shard of a device: xxhash64(device) mod Shards.
func Shard(device []byte) uint8 { return uint8(xxhash.Sum64(device) % Shards) }

// Assign buckets a device. It does not allocate.
func (b *Bucketer) Assign(device []byte) Assignment {
	if len(device) == 0 {
		return Assignment{Unassigned: true}
	}
	slot := b.salted.slot(device)
	a := Assignment{Slot: slot, Shard: Shard(device)}
	for i := 0; i < b.n; i++ {
		if uint32(slot) < b.bounds[i] {
			a.Test = uint8(i + 1)
			break
		}
	}
	return a
}

// Params returns the parameters of test i (0 = control).
func (b *Bucketer) Params(i uint8) *Params { return &b.params[i] }

// Set returns the compiled experiment set.
func (b *Bucketer) Set() *Set { return &b.set }

// Labels returns the report labels of an assignment: test id and variant.
func (b *Bucketer) Labels(a Assignment) (test, variant string) {
	switch {
	case a.Unassigned:
		return ControlTest, UnassignedVariant
	case a.Test == 0:
		return ControlTest, ControlVariant
	}
	t := &b.set.Tests[a.Test-1]
	return t.ID, t.Variant
}

// NumTests is the number of tests in the set.
func (b *Bucketer) NumTests() int { return b.n }

// Staging decides which devices go to the staging environment: slot below
// percent*100 under its own salt, independent of the A/B salt.
type Staging struct {
	salted saltedKey
	below  uint16
}

// DefaultStagingSalt is the staging layer's salt unless configured; every
// edge must use the same one so a device sticks to one environment.
const DefaultStagingSalt = "adedge-staging"

// NewStaging returns the staging layer for percent (0..100, 0.01 steps).
func NewStaging(salt string, percent float64) (*Staging, error) {
	if percent < 0 || percent > 100 || percent != percent {
		return nil, fmt.Errorf("staging percent %v: want 0..100", percent)
	}
	if salt == "" {
		salt = DefaultStagingSalt
	}
	return &Staging{salted: newSaltedKey(salt), below: uint16(percent*100 + 0.5)}, nil
}

// Staged reports whether a device's requests belong to staging. Requests
// without a device never do (they cannot stick to one environment).
func (s *Staging) Staged(device []byte) bool {
	if s == nil || s.below == 0 || len(device) == 0 {
		return false
	}
	return s.salted.slot(device) < s.below
}
