package abtest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Move is what a new experiment set does to the users one test had under
// the previous set (adtool experiments diff prints one line per Move; the
// builder refuses the ones that move users to another test).
type Move struct {
	Test  string
	Layer string // the new set's layer ("" for the original form, or an ended test's old layer)
	// Status is "unchanged", "resized" (only segments gained or lost, or
	// users held out), "moved" (some users land in another test, or the
	// layer was re-salted), "changed" (variant or parameters differ: the
	// id is reused for another treatment), "new" or "ended".
	Status string
	// OldShare and NewShare are the test's share of all traffic (holdout
	// excluded) under each set.
	OldShare, NewShare float64
	// Moved is the fraction of the test's old users no longer in it; of
	// those, ToOther are now in other tests of its layer and Held in the
	// holdout (the rest are control). 0 for new tests, 1 for ended ones.
	Moved, ToOther, Held float64
	// Into names the tests that take some of its users, with the fraction
	// of its old users each takes.
	Into map[string]float64
	// From is the fraction of the test's new users who were in another
	// test under the old set (it takes over someone else's users).
	From float64
	// Resalted is set when the test's layer salt changed (or it changed
	// layer): its users are drawn again, expected values are shown.
	Resalted bool
}

// testPlace is where a test sits in a compiled set.
type testPlace struct {
	index int    // in Set.Tests
	layer int    // layer index
	group uint8  // group in the layer
	salt  string // the layer's salt
}

type setShape struct {
	set    *Set
	groups []layerGroups
	places map[string]testPlace
}

func shapeOf(s *Set) setShape {
	sh := setShape{set: s, groups: s.slotGroups(), places: map[string]testPlace{}}
	for l, lg := range sh.groups {
		for g, ti := range lg.tests {
			sh.places[s.Tests[ti].ID] = testPlace{index: ti, layer: l, group: uint8(g + 1), salt: s.LayerSalt(l)}
		}
	}
	return sh
}

func (sh *setShape) slots(p testPlace) int {
	n := 0
	for _, g := range sh.groups[p.layer].group {
		if g == p.group {
			n++
		}
	}
	return n
}

func (sh *setShape) heldBP() uint32 {
	if sh.set.Holdout == nil {
		return 0
	}
	return sh.set.Holdout.ShareBP
}

// stillUnheld is the fraction of the old set's non-held users that the
// new set does not hold out (holdouts with one salt nest: growing one
// holds out only the slots it gains).
func stillUnheld(old, new *Set) float64 {
	ho, hn := uint32(0), uint32(0)
	if old.Holdout != nil {
		ho = old.Holdout.ShareBP
	}
	if new.Holdout != nil {
		hn = new.Holdout.ShareBP
	}
	if ho > 0 && hn > 0 && old.Holdout.Salt == new.Holdout.Salt {
		return float64(Slots-max(ho, hn)) / float64(Slots-ho)
	}
	return float64(Slots-hn) / Slots
}

// Moves compares each test of old with the same test in new, exactly on
// the slots (both sets must be valid). Tests come in old's order, then the
// new ones.
func Moves(old, new *Set) []Move {
	o, n := shapeOf(old), shapeOf(new)
	unheld := stillUnheld(old, new)
	oldFree := float64(Slots-o.heldBP()) / Slots
	newFree := float64(Slots-n.heldBP()) / Slots
	var out []Move
	for _, t := range old.Tests {
		op, ok := o.places[t.ID]
		if !ok {
			continue
		}
		oldSlots := o.slots(op)
		m := Move{Test: t.ID, Layer: o.layerID(op.layer), OldShare: float64(oldSlots) / Slots * oldFree}
		np, still := n.places[t.ID]
		if !still {
			m.Status, m.Moved = "ended", 1
			out = append(out, m)
			continue
		}
		nt := &new.Tests[np.index]
		m.Layer = n.layerID(np.layer)
		m.NewShare = float64(n.slots(np)) / Slots * newFree
		into := map[string]int{} // other test -> slots (same salt) of t's old slots
		stay := 0
		if np.salt == op.salt {
			og, ng := o.groups[op.layer].group, n.groups[np.layer].group
			for sl := range og {
				if og[sl] != op.group {
					continue
				}
				switch g := ng[sl]; {
				case g == np.group:
					stay++
				case g != 0:
					into[new.Tests[n.groups[np.layer].tests[g-1]].ID]++
				}
			}
			from, newSlots := 0, 0
			for sl, g := range ng {
				if g != np.group {
					continue
				}
				newSlots++
				if og[sl] != 0 && og[sl] != op.group {
					from++
				}
			}
			if newSlots > 0 {
				m.From = float64(from) / float64(newSlots)
			}
		} else {
			// A new salt draws everyone again: expected shares.
			m.Resalted = true
			for _, g := range n.groups[np.layer].group {
				switch {
				case g == np.group:
					stay++
				case g != 0:
					into[new.Tests[n.groups[np.layer].tests[g-1]].ID]++
				}
			}
			oldSlots = Slots
		}
		if oldSlots > 0 {
			m.Moved = 1 - float64(stay)/float64(oldSlots)*unheld
			m.Held = 1 - unheld
			for id, k := range into {
				f := float64(k) / float64(oldSlots) * unheld
				if m.Into == nil {
					m.Into = map[string]float64{}
				}
				m.Into[id] = f
				m.ToOther += f
			}
		}
		switch {
		case t.Variant != nt.Variant || !maps.Equal(t.Params, nt.Params):
			m.Status = "changed"
		case m.ToOther > 0 || m.From > 0 || m.Resalted:
			m.Status = "moved"
		case m.Moved > 0 || m.OldShare != m.NewShare:
			m.Status = "resized"
		default:
			m.Status = "unchanged"
		}
		out = append(out, m)
	}
	for _, t := range new.Tests {
		if _, ok := o.places[t.ID]; ok {
			continue
		}
		np, ok := n.places[t.ID]
		if !ok {
			continue
		}
		out = append(out, Move{Test: t.ID, Layer: n.layerID(np.layer), Status: "new", NewShare: float64(n.slots(np)) / Slots * newFree})
	}
	return out
}

func (sh *setShape) layerID(l int) string {
	if !sh.set.Layered() {
		return ""
	}
	return sh.set.Layers[l].ID
}

// CheckChange returns the problems of replacing prev (the set the edges
// run now; nil for none) with s, each at a path of s: a running test whose
// users would move to another test or be drawn again (unless it says
// "allow_move": true), and a test id reused for another treatment
// (different variant, parameters or layer), also against retired, the
// tests that ran before and ended. s and prev must be valid (Check).
func (s *Set) CheckChange(prev *Set, retired []Test) []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	at := map[string]int{}
	for i := range s.Tests {
		at[s.Tests[i].ID] = i
	}
	for _, r := range retired {
		i, ok := at[r.ID]
		if !ok || (prev != nil && slices.ContainsFunc(prev.Tests, func(t Test) bool { return t.ID == r.ID })) {
			continue
		}
		if t := &s.Tests[i]; t.Variant != r.Variant || !maps.Equal(t.Params, r.Params) {
			add(fmt.Sprintf("tests[%d].id", i), "test id %q ended earlier as variant %q with params %s; a different treatment needs a new id (reports would mix the two)",
				t.ID, r.Variant, paramString(r.Params))
		}
	}
	if prev == nil {
		return ps
	}
	for _, m := range Moves(prev, s) {
		i, ok := at[m.Test]
		if !ok {
			continue
		}
		t := &s.Tests[i]
		p := fmt.Sprintf("tests[%d]", i)
		var was *Test
		for j := range prev.Tests {
			if prev.Tests[j].ID == t.ID {
				was = &prev.Tests[j]
			}
		}
		switch {
		case m.Status == "changed":
			add(p+".params", "test %q is running as variant %q with params %s; a different treatment needs a new id (reports would mix the two)",
				t.ID, was.Variant, paramString(was.Params))
		case m.Status == "moved" && !t.AllowMove:
			why := ""
			switch {
			case m.Resalted && was.Layer != t.Layer:
				p += ".layer"
				why = fmt.Sprintf("it moves from layer %q to %q, so its users are drawn again", was.Layer, t.Layer)
			case m.Resalted:
				p += ".layer"
				why = fmt.Sprintf("layer %q's salt changed, so its users are drawn again", t.Layer)
			case m.ToOther > 0:
				p += ".segments"
				ids := slices.Sorted(maps.Keys(m.Into))
				parts := make([]string, len(ids))
				for k, id := range ids {
					parts[k] = fmt.Sprintf("%s %.2f%%", id, m.Into[id]*100)
				}
				why = "its users would move to " + strings.Join(parts, ", ")
			default:
				p += ".segments"
				why = fmt.Sprintf("%.2f%% of its new users would come from other running tests", m.From*100)
			}
			if m.ToOther > 0 || m.Resalted {
				why += fmt.Sprintf(" (%.2f%% of its users move in all)", m.Moved*100)
			}
			add(p, "test %q is running and %s; keep running tests where they are, or say \"allow_move\": true on it to restart its results",
				t.ID, why)
		}
	}
	return ps
}

// paramString shows parameter overrides in a stable order.
func paramString(p map[string]float64) string {
	if len(p) == 0 {
		return "{}"
	}
	keys := slices.Sorted(maps.Keys(p))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %g", k, p[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
