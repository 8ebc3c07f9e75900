package aerotest

// Map (CDT) operation codes, as sent by the client.
const (
	mapSetType          = 64
	mapPut              = 67
	mapIncrement        = 73
	mapDecrement        = 74
	mapClear            = 75
	mapRemoveByKey      = 76
	mapRemoveByKeyRange = 84
	mapSize             = 96
	mapGetByKey         = 97
	mapGetByKeyRange    = 103

	rtNone     = 0
	rtCount    = 5
	rtKey      = 6
	rtValue    = 7
	rtKeyValue = 8
	rtExists   = 13
	rtInverted = 0x10000
)

// cdtOp runs one map operation on rec's bin op.name and returns its result.
// modify says whether the client sent it as a modify (op 4) or read (op 3).
func cdtOp(rec *record, op operation, modify bool) (any, error) {
	if op.ptype != ptBlob {
		return nil, opError(rcParameter)
	}
	// Without a context the payload is a raw big-endian int16 op code
	// followed by an optional msgpack array of parameters. With a context
	// it is the msgpack array [0xff, [ctx...], [code, params...]].
	if len(op.value) < 2 {
		return nil, opError(rcParameter)
	}
	if op.value[0]&0xf0 == 0x90 || op.value[0] == 0xdc || op.value[0] == 0xdd {
		return nil, opError(rcUnsupported) // nested contexts
	}
	code := int64(int16(uint16(op.value[0])<<8 | uint16(op.value[1])))
	var params []any
	if len(op.value) > 2 {
		decoded, err := decodeAll(op.value[2:])
		if err != nil {
			return nil, opError(rcParameter)
		}
		var ok bool
		if params, ok = decoded.([]any); !ok {
			return nil, opError(rcParameter)
		}
	}
	isModify := code >= mapSetType && code < mapSize
	if isModify != modify || code < mapSetType {
		return nil, opError(rcParameter) // list ops and mismatched op types
	}

	var m *mapVal
	if b, exists := rec.bins[op.name]; exists {
		if b.ptype != ptMap {
			return nil, opError(rcBinType)
		}
		v, err := decodeAll(b.data)
		if err != nil {
			return nil, opError(rcServerError)
		}
		var ok bool
		if m, ok = v.(*mapVal); !ok {
			return nil, opError(rcBinType)
		}
	}
	store := func() {
		pt, data := particle(m)
		rec.bins[op.name] = binValue{pt, data}
	}
	create := func(attr any) {
		if m == nil {
			m = &mapVal{}
			if a, ok := attr.(int64); ok {
				m.flags = byte(a & 0x03)
			}
		}
	}
	param := func(i int) any {
		if i < len(params) {
			return params[i]
		}
		return nil
	}

	switch code {
	case mapSetType:
		a, ok := param(0).(int64)
		if !ok {
			return nil, opError(rcParameter)
		}
		create(a)
		m.flags = byte(a & 0x03)
		if m.ordered() {
			sorted := &mapVal{flags: m.flags}
			for _, p := range m.pairs {
				sorted.put(p.k, p.v)
			}
			m = sorted
		}
		store()
		return nil, nil

	case mapPut:
		if len(params) < 2 {
			return nil, opError(rcParameter)
		}
		create(param(2))
		m.put(params[0], params[1])
		store()
		return int64(len(m.pairs)), nil

	case mapIncrement, mapDecrement:
		if len(params) < 1 {
			return nil, opError(rcParameter)
		}
		delta := param(1)
		if delta == nil {
			delta = int64(1)
		}
		create(param(2))
		var cur any = int64(0)
		if _, isFloat := delta.(float64); isFloat {
			cur = float64(0)
		}
		if i := m.find(params[0]); i >= 0 {
			cur = m.pairs[i].v
		}
		next, ok := addNumbers(cur, delta, code == mapDecrement)
		if !ok {
			return nil, opError(rcBinType)
		}
		m.put(params[0], next)
		store()
		return next, nil

	case mapClear:
		if m != nil {
			m.pairs = nil
			store()
		}
		return nil, nil

	case mapSize:
		if m == nil {
			return nil, nil
		}
		return int64(len(m.pairs)), nil

	case mapRemoveByKey, mapGetByKey:
		rt, ok := param(0).(int64)
		if !ok || len(params) < 2 {
			return nil, opError(rcParameter)
		}
		var sel []pair
		if m != nil {
			if i := m.find(params[1]); i >= 0 {
				sel = []pair{m.pairs[i]}
				if code == mapRemoveByKey {
					m.pairs = append(m.pairs[:i], m.pairs[i+1:]...)
					store()
				}
			}
		}
		return selection(rt, sel, true)

	case mapRemoveByKeyRange, mapGetByKeyRange:
		rt, ok := param(0).(int64)
		if !ok {
			return nil, opError(rcParameter)
		}
		begin := param(1)
		var end any = infinity
		if len(params) > 2 {
			end = params[2]
		}
		var sel, keep []pair
		if m != nil {
			for _, p := range m.pairs {
				if compare(p.k, begin) >= 0 && compare(p.k, end) < 0 {
					sel = append(sel, p)
				} else {
					keep = append(keep, p)
				}
			}
			if code == mapRemoveByKeyRange && len(sel) > 0 {
				m.pairs = keep
				store()
			}
		}
		return selection(rt, sel, false)
	}
	return nil, opError(rcUnsupported)
}

// selection shapes selected map items by return type.
func selection(rt int64, sel []pair, single bool) (any, error) {
	if rt&rtInverted != 0 {
		return nil, opError(rcUnsupported)
	}
	switch rt {
	case rtNone:
		return nil, nil
	case rtCount:
		return int64(len(sel)), nil
	case rtExists:
		return len(sel) > 0, nil
	case rtKey, rtValue:
		pick := func(p pair) any {
			if rt == rtKey {
				return p.k
			}
			return p.v
		}
		if single {
			if len(sel) == 0 {
				return nil, nil
			}
			return pick(sel[0]), nil
		}
		out := make([]any, len(sel))
		for i, p := range sel {
			out[i] = pick(p)
		}
		return out, nil
	case rtKeyValue:
		return &mapVal{pairs: sel}, nil
	}
	return nil, opError(rcUnsupported)
}

// addNumbers adds (or subtracts) integers or floats.
func addNumbers(a, b any, negate bool) (any, bool) {
	switch x := a.(type) {
	case int64:
		y, ok := b.(int64)
		if !ok {
			return nil, false
		}
		if negate {
			return x - y, true
		}
		return x + y, true
	case float64:
		y, ok := b.(float64)
		if !ok {
			if yi, isInt := b.(int64); isInt {
				y, ok = float64(yi), true
			}
		}
		if !ok {
			return nil, false
		}
		if negate {
			return x - y, true
		}
		return x + y, true
	}
	return nil, false
}
