package inventory

import (
	"testing"

	"github.com/adedge/adedge/abtest"
)

// layeredFile is the base inventory's experiment set in the layered form
// (same salt, t1..t3 on segments 0-19, 20-39, 40-49 of 100) plus a second
// layer and a holdout.
var layeredFile = []string{
	`{`,
	`  "id": "exp-1",`,
	`  "salt": "salt-1",`,
	`  "holdout": {"salt": "hold-1", "share_bp": 500},`,
	`  "layers": [`,
	`    {"id": "main", "salt": "salt-1", "segments": 100},`,
	`    {"id": "ctr", "segments": 1000}`,
	`  ],`,
	`  "tests": [`,
	`    {"id": "t1", "layer": "main", "variant": "floor_plus_10", "segments": "0-19", "params": {"floor_multiplier": 1.1}},`,
	`    {"id": "t2", "layer": "main", "variant": "cpi boost", "segments": "20-39", "params": {"weight_cpi": 1.5}},`,
	`    {"id": "t3", "layer": "main", "variant": "aa", "segments": "40-49"},`,
	`    {"id": "c1", "layer": "ctr", "variant": "min_ctr_1pc", "segments": "0-99", "params": {"min_ctr": 0.01}}`,
	`  ]`,
	`}`,
}

func layeredFiles(t *testing.T) *files {
	f := newFiles(t)
	f.m[ExperimentsFile] = append([]string(nil), layeredFile...)
	return f
}

func TestLayeredExperimentsLoad(t *testing.T) {
	inv, err := loadFiles(t, layeredFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	e := inv.Experiments
	if len(e.Layers) != 2 || e.Holdout == nil || e.Holdout.ShareBP != 500 || e.Tests[3].Layer != "ctr" || e.Tests[1].Segments != "20-39" {
		t.Fatalf("%+v", e)
	}
}

func TestLayeredExperimentsProblems(t *testing.T) {
	for _, tc := range []problemCase{
		{"overlapping segments", func(f *files) { f.replace(ExperimentsFile, 11, `"20-39"`, `"15-39"`) },
			[]string{`experiments.json:11: tests[1].segments: segment 15-19 is also tests[0]'s (t1) in layer "main"`}},
		{"beyond the space", func(f *files) { f.replace(ExperimentsFile, 13, `"0-99"`, `"0-1000"`) },
			[]string{`experiments.json:13: tests[3].segments: segment 1000 is outside the layer's 1000 segments (0-999)`}},
		{"unknown layer", func(f *files) { f.replace(ExperimentsFile, 12, `"main"`, `"mian"`) },
			[]string{`experiments.json:12: tests[2].layer: unknown layer "mian" (layers: "main", "ctr")`}},
		{"parameter in two layers", func(f *files) { f.replace(ExperimentsFile, 13, `"min_ctr"`, `"weight_cpi"`) },
			[]string{`experiments.json:13: tests[3].params.weight_cpi: parameter "weight_cpi" is also set by tests[1] in layer "main"`}},
		{"segments not dividing", func(f *files) { f.replace(ExperimentsFile, 7, `1000`, `999`) },
			[]string{`experiments.json:7: layers[1].segments: must divide 10000`}},
		{"missing layer segments", func(f *files) { f.replace(ExperimentsFile, 7, `, "segments": 1000`, ``) },
			[]string{`experiments.json:7: layers[1].segments: required field missing`}},
		{"holdout share", func(f *files) { f.replace(ExperimentsFile, 4, `500`, `0`) },
			[]string{`experiments.json:4: holdout.share_bp: must be in [1, 9999]`}},
		{"holdout type", func(f *files) { f.replace(ExperimentsFile, 4, `{"salt": "hold-1", "share_bp": 500}`, `5`) },
			[]string{`experiments.json:4: holdout: expected an object, got number 5`}},
		{"share_bp in a layered set", func(f *files) { f.replace(ExperimentsFile, 12, `"segments": "40-49"`, `"share_bp": 1000`) },
			[]string{`experiments.json:12: tests[2].segments: required in a layered set`, `experiments.json:12: tests[2].share_bp: a layered set allocates segments`}},
		{"allow_move not a bool", func(f *files) { f.replace(ExperimentsFile, 12, `"segments"`, `"allow_move": "yes", "segments"`) },
			[]string{`experiments.json:12: tests[2].allow_move: expected true or false, got string "yes"`}},
		{"bad segment list", func(f *files) { f.replace(ExperimentsFile, 12, `"40-49"`, `"40-"`) },
			[]string{`experiments.json:12: tests[2].segments: "40-": want a segment number or an inclusive range "lo-hi"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := layeredFiles(t)
			tc.edit(f)
			inv, err := loadFiles(t, f)
			if inv != nil {
				t.Error("got an inventory along with problems")
			}
			expectProblems(t, err, tc.want...)
		})
	}
}

// The previous set (the builder's state) is what edges run: a change that
// moves a running test's users is refused at the test's line, naming it.
func TestPreviousSetRefusal(t *testing.T) {
	base, err := loadFiles(t, layeredFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	prev := &Previous{Set: &base.Experiments, Source: "state.json", Retired: []abtest.Test{{ID: "t0", Variant: "gone"}}}
	load := func(f *files) (*Inventory, error) { return Load(f.write(), Options{Now: fixedNow, Previous: prev}) }

	f := layeredFiles(t) // halving t1: allowed, t2/t3 untouched
	f.replace(ExperimentsFile, 10, `"0-19"`, `"0-9"`)
	if _, err := load(f); err != nil {
		t.Fatalf("halving t1 refused: %v", err)
	}
	f = layeredFiles(t) // t2 grows over t3's segments
	f.replace(ExperimentsFile, 11, `"20-39"`, `"20-44"`)
	f.replace(ExperimentsFile, 12, `"40-49"`, `"45-49"`)
	_, err = load(f)
	expectProblems(t, err, `experiments.json:11: tests[1].segments: test "t2" is running and 20.00% of its new users would come from other running tests`,
		`experiments.json:12: tests[2].segments: test "t3" is running and its users would move to t2 50.00%`, `(previous set: state.json)`)
	f.replace(ExperimentsFile, 11, `"segments"`, `"allow_move": true, "segments"`)
	f.replace(ExperimentsFile, 12, `"segments"`, `"allow_move": true, "segments"`)
	if _, err := load(f); err != nil {
		t.Fatalf("allow_move refused: %v", err)
	}
	f = layeredFiles(t) // a running test's parameters changed
	f.replace(ExperimentsFile, 10, `1.1`, `1.2`)
	_, err = load(f)
	expectProblems(t, err, `experiments.json:10: tests[0].params: test "t1" is running as variant "floor_plus_10" with params {floor_multiplier: 1.1}; a different treatment needs a new id`)
	f = layeredFiles(t) // an ended id back with another variant
	f.replace(ExperimentsFile, 12, `"t3"`, `"t0"`)
	_, err = load(f)
	expectProblems(t, err, `experiments.json:12: tests[2].id: test id "t0" ended earlier as variant "gone"`)
}
