package abtest

import (
	"encoding/json"
	"fmt"
	"strconv"

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

// MaxLayers is how many layers an experiment set may have. Tests in
// different layers overlap (independent salts); the parameter combinations
// of all layers are precompiled (at most (MaxTests+1)^MaxLayers = 256).
const MaxLayers = 4

// HoldoutTest labels the requests of the global holdout (test and variant
// "holdout"): in every layer they run control parameters and are reported
// as a group of their own, left out of the layer's comparisons.
const HoldoutTest = "holdout"

// Test is one A/B test of an experiment set (experiments.json, shipped in
// the snapshot's experiments section). In a set without layers (the
// original form) it takes ShareBP consecutive slots after the tests before
// it; in a layered set it names its Layer and holds Segments of it, so
// adding, resizing or ending another test never moves its users.
type Test struct {
	ID    string `json:"id"`
	Layer string `json:"layer,omitempty"`
	// Variant is the label reports show.
	Variant string `json:"variant"`
	ShareBP uint32 `json:"share_bp,omitempty"`
	// Segments are the layer segments the test holds, inclusive ranges:
	// "0-19,40-44".
	Segments string `json:"segments,omitempty"`
	// AllowMove lets this build move the test's running users (to another
	// test, layer or salt): the builder refuses such a change otherwise.
	AllowMove bool               `json:"allow_move,omitempty"`
	Params    map[string]float64 `json:"params"`
}

// Layer is one independent randomisation of the users (Tang et al. 2010):
// slot = xxhash64(salt + ":" + device) mod Slots, segment = slot /
// (Slots/Segments). Tests of one layer hold disjoint segments; tests of
// different layers overlap and must not override the same parameter.
type Layer struct {
	ID string `json:"id"`
	// Salt is the layer's own salt; empty means the set's salt + "." + ID.
	Salt string `json:"salt,omitempty"`
	// Segments divides the layer's Slots: 100, 1000 or any divisor.
	Segments uint32 `json:"segments"`
}

// Holdout is the global holdout: devices with xxhash64(salt + ":" +
// device) mod Slots below ShareBP are in no test of any layer.
type Holdout struct {
	Salt    string `json:"salt"`
	ShareBP uint32 `json:"share_bp"`
}

// Set is the experiment set as the snapshot stores it. Without Layers it
// is one unnamed layer salted with Salt, tests in consecutive ShareBP
// ranges: exactly the original form's bucketing.
type Set struct {
	ID      string   `json:"id"`
	Salt    string   `json:"salt"`
	Holdout *Holdout `json:"holdout,omitempty"`
	Layers  []Layer  `json:"layers,omitempty"`
	Tests   []Test   `json:"tests"`
}

// Layered reports whether the set uses layers and segments (else it is the
// original form: one unnamed layer, ShareBP ranges).
func (s *Set) Layered() bool { return len(s.Layers) > 0 }

// LayerSalt is the salt layer l of the set buckets with.
func (s *Set) LayerSalt(l int) string {
	if !s.Layered() {
		return s.Salt
	}
	if s.Layers[l].Salt != "" {
		return s.Layers[l].Salt
	}
	return s.Salt + "." + s.Layers[l].ID
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

// TestIndex is the first layer's Assignment.Test of the test named id: 0
// for "control", false when that layer has no such test.
func (b *Bucketer) TestIndex(id string) (uint8, bool) {
	if id == ControlTest {
		return 0, true
	}
	for g, ti := range b.layers[0].tests {
		if b.set.Tests[ti].ID == id {
			return uint8(g + 1), true
		}
	}
	return 0, false
}

// Only is the assignment of a device in test id and control in every
// other layer ("control" gives control everywhere): what adtool lookup
// --test runs. False when the set has no such test.
func (b *Bucketer) Only(id string) (Assignment, bool) {
	if id == ControlTest {
		return Assignment{}, true
	}
	for l := range b.layers {
		for g, ti := range b.layers[l].tests {
			if b.set.Tests[ti].ID == id {
				a := Assignment{}
				a.Groups[l] = uint8(g + 1)
				a.Test = a.Groups[0]
				a.combo = uint8((g + 1) << (2 * l))
				return a, true
			}
		}
	}
	return Assignment{}, false
}

// Assignment is where one request's device falls, in every layer.
type Assignment struct {
	// Test is the first layer's group: 0 for control (and unassigned and
	// held out), 1..3 for its tests. The tracking token carries it.
	Test uint8
	// Unassigned is set for requests without a device id (control, but
	// not randomised: reports keep them out of comparisons).
	Unassigned bool
	// Held is set for devices in the global holdout (control everywhere,
	// reported as test "holdout").
	Held bool
	// Shard is xxhash64(device) mod Shards (0 when unassigned).
	Shard uint8
	// Slot is the first layer's slot, 0..Slots-1.
	Slot uint16
	// Groups is each layer's group (0 control, 1..3 its tests), in the
	// set's layer order; Groups[0] == Test.
	Groups [MaxLayers]uint8
	combo  uint8 // index of the merged parameters
}

// NumLabelKeys bounds Assignment.LabelKey: one key per combination of the
// layers' groups, then unassigned, then held out.
const NumLabelKeys = 1<<(2*MaxLayers) + 2

// LabelKey numbers the assignment's report labels in every layer (what
// Labels and LayerLabels return): equal keys, equal labels, for one
// Bucketer. The edge memoises the JSON of the labels by it. -1 for an
// assignment Assign cannot produce (a group over MaxTests).
func (a Assignment) LabelKey() int {
	switch {
	case a.Unassigned:
		return NumLabelKeys - 2
	case a.Held:
		return NumLabelKeys - 1
	}
	k := 0
	for l, g := range a.Groups {
		if g > MaxTests {
			return -1
		}
		k |= int(g) << (2 * l)
	}
	return k
}

// compiledLayer is one layer ready for Assign.
type compiledLayer struct {
	id     string
	salted saltedKey
	group  []uint8              // per slot: 0 control, 1..MaxTests
	tests  []int                // set test index of group g+1
	share  [MaxTests + 1]uint32 // slots per group, counted once: every logged decision reads it
}

// Bucketer assigns devices to tests. It is immutable: build one per
// experiment set (per snapshot) and share it across goroutines.
type Bucketer struct {
	set     Set
	layers  []compiledLayer
	holdout saltedKey
	heldBP  uint16
	params  []Params // by Assignment.combo
	real    bool     // compiled from a valid set (not the all-control fallback)
}

// NewBucketer compiles a validated set against the control defaults.
func NewBucketer(s Set, defaults Params) (*Bucketer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b := compile(s, defaults)
	b.real = true
	return b, nil
}

// compile builds the Bucketer of a set already checked (or the all-control
// fallback, which has no tests to check).
func compile(s Set, defaults Params) *Bucketer {
	b := &Bucketer{set: s}
	if s.Holdout != nil {
		b.holdout, b.heldBP = newSaltedKey(s.Holdout.Salt), uint16(s.Holdout.ShareBP)
	}
	groups := s.slotGroups()
	b.layers = make([]compiledLayer, len(groups))
	for l, g := range groups {
		cl := &b.layers[l]
		cl.salted, cl.group = newSaltedKey(s.LayerSalt(l)), g.group
		cl.tests = g.tests
		for _, x := range cl.group {
			if int(x) < len(cl.share) {
				cl.share[x]++
			}
		}
		if s.Layered() {
			cl.id = s.Layers[l].ID
		}
	}
	// Every combination of the layers' groups, 2 bits a layer.
	n := 1 << (2 * len(b.layers))
	b.params = make([]Params, n)
	for c := range b.params {
		p := defaults
		for l := range b.layers {
			if g := (c >> (2 * l)) & 3; g > 0 && g <= len(b.layers[l].tests) {
				p = p.Apply(s.Tests[b.layers[l].tests[g-1]].Params)
			}
		}
		b.params[c] = p
	}
	return b
}

// layerGroups is one layer's slot table and its tests (set indexes).
type layerGroups struct {
	group []uint8
	tests []int
}

// slotGroups maps every slot of every layer to its group. The set must be
// valid (Check), or the all-control fallback.
func (s *Set) slotGroups() []layerGroups {
	if !s.Layered() {
		lg := layerGroups{group: make([]uint8, Slots)}
		cum := uint32(0)
		for i, t := range s.Tests {
			lg.tests = append(lg.tests, i)
			for sl := cum; sl < min(cum+t.ShareBP, Slots); sl++ {
				lg.group[sl] = uint8(len(lg.tests))
			}
			cum += t.ShareBP
		}
		return []layerGroups{lg}
	}
	out := make([]layerGroups, len(s.Layers))
	for l := range out {
		out[l].group = make([]uint8, Slots)
	}
	for i, t := range s.Tests {
		l := s.layerIndex(t.Layer)
		if l < 0 {
			continue
		}
		lg := &out[l]
		lg.tests = append(lg.tests, i)
		width := Slots / s.Layers[l].Segments
		rs, _ := ParseSegments(t.Segments, s.Layers[l].Segments)
		for _, r := range rs {
			for sl := r.Lo * width; sl < (r.Hi+1)*width; sl++ {
				lg.group[sl] = uint8(len(lg.tests))
			}
		}
	}
	return out
}

// layerIndex is the index of the layer named id, -1 when there is none.
func (s *Set) layerIndex(id string) int {
	for i := range s.Layers {
		if s.Layers[i].ID == id {
			return i
		}
	}
	return -1
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

// Assign buckets a device in every layer. It does not allocate.
func (b *Bucketer) Assign(device []byte) Assignment {
	if len(device) == 0 {
		return Assignment{Unassigned: true}
	}
	a := Assignment{Shard: Shard(device)}
	if b.heldBP > 0 && b.holdout.slot(device) < b.heldBP {
		a.Held = true
		return a
	}
	combo := 0
	for l := range b.layers {
		cl := &b.layers[l]
		slot := cl.salted.slot(device)
		g := cl.group[slot]
		if l == 0 {
			a.Slot = slot
		}
		a.Groups[l] = g
		combo |= int(g) << (2 * l)
	}
	a.Test, a.combo = a.Groups[0], uint8(combo)
	return a
}

// Params returns the merged parameters of an assignment: the defaults with
// the overrides of its test in every layer.
func (b *Bucketer) Params(a Assignment) *Params { return &b.params[a.combo] }

// TestParams returns the parameters of the first layer's group i (0 =
// control), as if the device were control in every other layer.
func (b *Bucketer) TestParams(i uint8) *Params { return &b.params[i&3] }

// Set returns the compiled experiment set.
func (b *Bucketer) Set() *Set { return &b.set }

// Labels returns the first layer's report labels of an assignment: test id
// and variant.
func (b *Bucketer) Labels(a Assignment) (test, variant string) {
	_, test, variant = b.LayerLabels(a, 0)
	return test, variant
}

// LayerLabels returns layer l's id ("" for the original form's one layer)
// and the assignment's test id and variant in it.
func (b *Bucketer) LayerLabels(a Assignment, l int) (layer, test, variant string) {
	cl := &b.layers[l]
	switch g := a.Groups[l]; {
	case a.Unassigned:
		return cl.id, ControlTest, UnassignedVariant
	case a.Held:
		return cl.id, HoldoutTest, HoldoutTest
	case g == 0 || int(g) > len(cl.tests):
		return cl.id, ControlTest, ControlVariant
	default:
		t := &b.set.Tests[cl.tests[g-1]]
		return cl.id, t.ID, t.Variant
	}
}

// AppendLayers appends every layer's assignment as
// "layer:test:variant:share_bp;..." (the ad event's layers field; the
// share is LayerShareBP, what the warehouse's sample-ratio check needs
// per layer; Check keeps ':' and ';' out of a layered set's labels). A set without
// layers appends nothing: the event's test and variant say it all.
func (b *Bucketer) AppendLayers(dst []byte, a Assignment) []byte {
	if !b.set.Layered() {
		return dst
	}
	for l := range b.layers {
		if l > 0 {
			dst = append(dst, ';')
		}
		layer, test, variant := b.LayerLabels(a, l)
		dst = append(dst, layer...)
		dst = append(dst, ':')
		dst = append(dst, test...)
		dst = append(dst, ':')
		dst = append(dst, variant...)
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, uint64(b.LayerShareBP(a, l)), 10)
	}
	return dst
}

// LayerShareBP is the configured share (basis points) of a's group in
// layer l: the holdout's for a held device, 0 without a device (the
// A/B rows' share_bp, per layer).
func (b *Bucketer) LayerShareBP(a Assignment, l int) uint32 {
	switch {
	case a.Unassigned:
		return 0
	case a.Held:
		return b.HoldoutBP()
	}
	return b.GroupShareBP(l, uint8(group(a, l)))
}

// GroupTest returns the test of layer l's group g (1..3); nil for control
// or a group the layer does not have.
func (b *Bucketer) GroupTest(l int, g uint8) *Test {
	cl := &b.layers[l]
	if g == 0 || int(g) > len(cl.tests) {
		return nil
	}
	return &b.set.Tests[cl.tests[g-1]]
}

// GroupShareBP is the share of layer l's group g in 0.01% units of the
// layer (before the holdout).
func (b *Bucketer) GroupShareBP(l int, g uint8) uint32 {
	if int(g) >= len(b.layers[l].share) {
		return 0
	}
	return b.layers[l].share[g]
}

// NumLayers is the number of layers (1 for the original form).
func (b *Bucketer) NumLayers() int { return len(b.layers) }

// LayerTests is the number of tests in layer l.
func (b *Bucketer) LayerTests(l int) int { return len(b.layers[l].tests) }

// NumTests is the number of tests in the first layer.
func (b *Bucketer) NumTests() int { return len(b.layers[0].tests) }

// HoldoutBP is the global holdout's share in 0.01% units (0: none).
func (b *Bucketer) HoldoutBP() uint32 { return uint32(b.heldBP) }

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
