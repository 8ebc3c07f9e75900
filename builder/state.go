package builder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/internal/atomicfile"
)

// StateFile is the experiment-set state a build reads and writes in its
// output directory unless Options.State names another file.
const StateFile = "experiments.state.json"

// NoState as Options.State skips the experiment-set state: no check
// against the previous set, nothing written.
const NoState = "none"

// maxStateBytes bounds the state file (a set and its ended tests).
const maxStateBytes = 4 << 20

// ExperimentsState is the state file: the experiment set of the last build
// (what the edges run once it is published) and every test that ran
// before and ended, so that a new experiments.json cannot move a running
// test's users or bring an old id back with other parameters.
type ExperimentsState struct {
	Snapshot string        `json:"snapshot"` // the build that wrote it
	Set      abtest.Set    `json:"set"`
	Retired  []abtest.Test `json:"retired"`
}

// statePath resolves Options.State ("" if there is none).
func (o *Options) statePath() string {
	switch o.State {
	case NoState:
		return ""
	case "":
		return filepath.Join(o.Out, StateFile)
	}
	return o.State
}

// ReadState reads a state file; nil, nil when it does not exist (a first
// build).
func ReadState(path string) (*ExperimentsState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("experiments state %s: %d bytes, more than %d", path, len(b), maxStateBytes)
	}
	var st ExperimentsState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("experiments state %s: %w (fix it, or build with --experiments-state none to skip the check once)", path, err)
	}
	if err := st.Set.Validate(); err != nil {
		return nil, fmt.Errorf("experiments state %s: %w", path, err)
	}
	return &st, nil
}

// previous is the state as the inventory's check wants it.
func (st *ExperimentsState) previous(path string) *inventory.Previous {
	if st == nil {
		return nil
	}
	src := path
	if st.Snapshot != "" {
		src += ", snapshot " + st.Snapshot
	}
	return &inventory.Previous{Set: &st.Set, Retired: st.Retired, Source: src}
}

// next is the state after a build of set: the tests of the previous set
// that set no longer has join the retired ones (the newest wins an id).
func (st *ExperimentsState) next(version string, set abtest.Set) *ExperimentsState {
	n := &ExperimentsState{Snapshot: version, Set: set, Retired: []abtest.Test{}}
	if st == nil {
		return n
	}
	running := map[string]bool{}
	for _, t := range set.Tests {
		running[t.ID] = true
	}
	seen := map[string]bool{}
	ended := append([]abtest.Test(nil), st.Set.Tests...)
	for _, t := range append(ended, st.Retired...) {
		if running[t.ID] || seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		t.AllowMove = false
		n.Retired = append(n.Retired, t)
	}
	return n
}

// writeState writes the state atomically.
func writeState(path string, st *ExperimentsState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(b, '\n'))
}
