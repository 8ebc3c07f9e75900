package aerotest

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Values decoded from Aerospike's msgpack dialect (strings and blobs carry
// a leading particle-type byte inside the msgpack str payload).
type (
	blobVal []byte
	// rawStr is a msgpack str with a particle type other than string/blob
	// (GeoJSON, ...); it is kept verbatim.
	rawStr struct {
		ptype byte
		data  string
	}
	// mapVal keeps insertion order, or key order when flags&1 (key-ordered).
	mapVal struct {
		flags byte
		pairs []pair
	}
	pair struct{ k, v any }
	// special is the infinity/wildcard extension used in range operands.
	special byte
)

const (
	wildcard special = 0
	infinity special = 1
)

// Particle types of the wire protocol.
const (
	ptNull    = 0
	ptInteger = 1
	ptFloat   = 2
	ptString  = 3
	ptBlob    = 4
	ptBool    = 17
	ptMap     = 19
	ptList    = 20
)

var errShort = errors.New("msgpack: truncated value")

// decoder reads one msgpack stream; every read is bounds-checked so bad
// client input yields an error, never a panic.
type decoder struct {
	b   []byte
	off int
	// depth guards against maliciously deep nesting.
	depth int
}

func (d *decoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.off < n {
		return nil, errShort
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

func (d *decoder) u8() (byte, error) {
	p, err := d.need(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (d *decoder) uN(n int) (uint64, error) {
	p, err := d.need(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// value decodes one value. ext values other than the CDT specials come back
// as *extVal so containers can recognise order headers.
func (d *decoder) value() (any, error) {
	t, err := d.u8()
	if err != nil {
		return nil, err
	}
	switch {
	case t <= 0x7f:
		return int64(t), nil
	case t >= 0xe0:
		return int64(int8(t)), nil
	case t&0xf0 == 0x80:
		return d.mapOf(int(t & 0x0f))
	case t&0xf0 == 0x90:
		return d.listOf(int(t & 0x0f))
	case t&0xe0 == 0xa0:
		return d.str(int(t & 0x1f))
	}
	switch t {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32: Aerospike doesn't send these, accept as blobs
		n, err := d.uN(1 << (t - 0xc4))
		if err != nil {
			return nil, err
		}
		p, err := d.need(int(n))
		return blobVal(bytes.Clone(p)), err
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32
		n, err := d.uN(1 << (t - 0xc7))
		if err != nil {
			return nil, err
		}
		return d.ext(int(n))
	case 0xca:
		v, err := d.uN(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		v, err := d.uN(8)
		return math.Float64frombits(v), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := d.uN(1 << (t - 0xcc))
		return int64(v), err // Aerospike integers are 64-bit signed
	case 0xd0:
		v, err := d.uN(1)
		return int64(int8(v)), err
	case 0xd1:
		v, err := d.uN(2)
		return int64(int16(v)), err
	case 0xd2:
		v, err := d.uN(4)
		return int64(int32(v)), err
	case 0xd3:
		v, err := d.uN(8)
		return int64(v), err
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16
		return d.ext(1 << (t - 0xd4))
	case 0xd9, 0xda, 0xdb:
		n, err := d.uN(1 << (t - 0xd9))
		if err != nil {
			return nil, err
		}
		return d.str(int(n))
	case 0xdc, 0xdd:
		n, err := d.uN(2 << (t - 0xdc))
		if err != nil {
			return nil, err
		}
		return d.listOf(int(n))
	case 0xde, 0xdf:
		n, err := d.uN(2 << (t - 0xde))
		if err != nil {
			return nil, err
		}
		return d.mapOf(int(n))
	}
	return nil, fmt.Errorf("msgpack: unsupported type byte 0x%02x", t)
}

// extVal is an extension value: the CDT order header (type = flags).
type extVal struct {
	typ  byte
	data []byte
}

func (d *decoder) ext(n int) (any, error) {
	typ, err := d.u8()
	if err != nil {
		return nil, err
	}
	p, err := d.need(n)
	if err != nil {
		return nil, err
	}
	if typ == 0xff && n == 1 && (p[0] == 0 || p[0] == 1) {
		return special(p[0]), nil
	}
	return &extVal{typ: typ, data: p}, nil
}

func (d *decoder) str(n int) (any, error) {
	p, err := d.need(n)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return "", nil
	}
	switch p[0] {
	case ptString:
		return string(p[1:]), nil
	case ptBlob:
		return blobVal(bytes.Clone(p[1:])), nil
	}
	return rawStr{ptype: p[0], data: string(p[1:])}, nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > 64 {
		return errors.New("msgpack: nesting deeper than 64")
	}
	return nil
}

func (d *decoder) listOf(n int) (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	if n > len(d.b)-d.off { // every element takes at least one byte
		return nil, errShort
	}
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		if _, ok := v.(*extVal); ok && i == 0 {
			continue // ordered-list header
		}
		out = append(out, v)
	}
	return out, nil
}

func (d *decoder) mapOf(n int) (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	if n > (len(d.b)-d.off)/2 {
		return nil, errShort
	}
	m := &mapVal{pairs: make([]pair, 0, n)}
	for i := 0; i < n; i++ {
		k, err := d.value()
		if err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		if e, ok := k.(*extVal); ok && i == 0 {
			m.flags = e.typ // map order header: c7 00 <flags> c0
			continue
		}
		m.pairs = append(m.pairs, pair{k, v})
	}
	if m.ordered() {
		slices.SortStableFunc(m.pairs, func(a, b pair) int { return compare(a.k, b.k) })
	}
	return m, nil
}

func decodeAll(b []byte) (any, error) {
	d := decoder{b: b}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("msgpack: %d trailing bytes", len(b)-d.off)
	}
	return v, nil
}

func (m *mapVal) ordered() bool { return m.flags&1 != 0 }

// find returns the index of key k or -1.
func (m *mapVal) find(k any) int {
	for i := range m.pairs {
		if compare(m.pairs[i].k, k) == 0 {
			return i
		}
	}
	return -1
}

// put inserts or replaces k, keeping key order for ordered maps.
func (m *mapVal) put(k, v any) {
	if i := m.find(k); i >= 0 {
		m.pairs[i].v = v
		return
	}
	if !m.ordered() {
		m.pairs = append(m.pairs, pair{k, v})
		return
	}
	i, _ := slices.BinarySearchFunc(m.pairs, k, func(p pair, k any) int { return compare(p.k, k) })
	m.pairs = slices.Insert(m.pairs, i, pair{k, v})
}

// typeRank orders values of different types as the server does.
func typeRank(v any) int {
	switch x := v.(type) {
	case special:
		if x == infinity {
			return 100
		}
		return 99
	case nil:
		return 1
	case bool:
		return 2
	case int64:
		return 3
	case string:
		return 4
	case []any:
		return 5
	case *mapVal:
		return 6
	case blobVal:
		return 7
	case float64:
		return 8
	case rawStr:
		return 9
	}
	return 50
}

// compare orders values the way key-ordered maps and range ops need.
func compare(a, b any) int {
	ra, rb := typeRank(a), typeRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case int64:
		return cmp.Compare(x, b.(int64))
	case float64:
		return cmp.Compare(x, b.(float64))
	case string:
		return cmp.Compare(x, b.(string))
	case blobVal:
		return bytes.Compare(x, b.(blobVal))
	case rawStr:
		return cmp.Or(cmp.Compare(x.ptype, b.(rawStr).ptype), cmp.Compare(x.data, b.(rawStr).data))
	case []any:
		y := b.([]any)
		for i := 0; i < len(x) && i < len(y); i++ {
			if c := compare(x[i], y[i]); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(x), len(y))
	case *mapVal:
		y := b.(*mapVal)
		for i := 0; i < len(x.pairs) && i < len(y.pairs); i++ {
			if c := cmp.Or(compare(x.pairs[i].k, y.pairs[i].k), compare(x.pairs[i].v, y.pairs[i].v)); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(x.pairs), len(y.pairs))
	}
	return 0
}

// encoder writes Aerospike msgpack.
type encoder struct{ b []byte }

func (e *encoder) u8(c byte) { e.b = append(e.b, c) }

func (e *encoder) typed(t byte, v uint64, n int) {
	e.b = append(e.b, t)
	for i := n - 1; i >= 0; i-- {
		e.b = append(e.b, byte(v>>(8*i)))
	}
}

func (e *encoder) int(v int64) {
	switch {
	case v >= 0 && v < 128:
		e.u8(byte(v))
	case v >= 0 && v <= math.MaxUint8:
		e.typed(0xcc, uint64(v), 1)
	case v >= 0 && v <= math.MaxUint16:
		e.typed(0xcd, uint64(v), 2)
	case v >= 0 && v <= math.MaxUint32:
		e.typed(0xce, uint64(v), 4)
	case v >= -32 && v < 0:
		e.u8(byte(0xe0 | (v + 32)))
	case v >= math.MinInt8 && v < 0:
		e.typed(0xd0, uint64(uint8(v)), 1)
	case v >= math.MinInt16 && v < 0:
		e.typed(0xd1, uint64(uint16(v)), 2)
	case v >= math.MinInt32 && v < 0:
		e.typed(0xd2, uint64(uint32(v)), 4)
	default:
		e.typed(0xd3, uint64(v), 8)
	}
}

func (e *encoder) strHeader(n int) {
	switch {
	case n < 32:
		e.u8(0xa0 | byte(n))
	case n < 256:
		e.typed(0xd9, uint64(n), 1)
	case n < 65536:
		e.typed(0xda, uint64(n), 2)
	default:
		e.typed(0xdb, uint64(n), 4)
	}
}

func (e *encoder) prefixed(ptype byte, s string) {
	e.strHeader(len(s) + 1)
	e.u8(ptype)
	e.b = append(e.b, s...)
}

func (e *encoder) count(fix byte, t16 byte, n int) {
	switch {
	case n < 16:
		e.u8(fix | byte(n))
	case n < 65536:
		e.typed(t16, uint64(n), 2)
	default:
		e.typed(t16+1, uint64(n), 4)
	}
}

func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.u8(0xc0)
	case bool:
		if x {
			e.u8(0xc3)
		} else {
			e.u8(0xc2)
		}
	case int64:
		e.int(x)
	case float64:
		e.typed(0xcb, math.Float64bits(x), 8)
	case string:
		e.prefixed(ptString, x)
	case blobVal:
		e.prefixed(ptBlob, string(x))
	case rawStr:
		e.prefixed(x.ptype, x.data)
	case special:
		e.b = append(e.b, 0xd4, 0xff, byte(x))
	case []any:
		e.count(0x90, 0xdc, len(x))
		for _, it := range x {
			e.value(it)
		}
	case *mapVal:
		n := len(x.pairs)
		if x.flags != 0 {
			n++
		}
		e.count(0x80, 0xde, n)
		if x.flags != 0 {
			e.b = append(e.b, 0xc7, 0x00, x.flags, 0xc0)
		}
		for _, p := range x.pairs {
			e.value(p.k)
			e.value(p.v)
		}
	case *extVal:
		e.typed(0xc7, uint64(len(x.data)), 1)
		e.u8(x.typ)
		e.b = append(e.b, x.data...)
	default:
		e.u8(0xc0)
	}
}

// particle converts a result value to the (type, bytes) a bin carries.
func particle(v any) (byte, []byte) {
	switch x := v.(type) {
	case nil:
		return ptNull, nil
	case int64:
		return ptInteger, binary.BigEndian.AppendUint64(nil, uint64(x))
	case float64:
		return ptFloat, binary.BigEndian.AppendUint64(nil, math.Float64bits(x))
	case bool:
		if x {
			return ptBool, []byte{1}
		}
		return ptBool, []byte{0}
	case string:
		return ptString, []byte(x)
	case blobVal:
		return ptBlob, []byte(x)
	case rawStr:
		return x.ptype, []byte(x.data)
	case []any:
		var e encoder
		e.value(x)
		return ptList, e.b
	case *mapVal:
		var e encoder
		e.value(x)
		return ptMap, e.b
	}
	return ptNull, nil
}

// fromParticle decodes a stored bin into a value.
func fromParticle(ptype byte, data []byte) (any, error) {
	switch ptype {
	case ptNull:
		return nil, nil
	case ptInteger:
		if len(data) > 8 {
			return nil, errors.New("integer particle longer than 8 bytes")
		}
		var v uint64
		for _, c := range data {
			v = v<<8 | uint64(c)
		}
		return int64(v), nil
	case ptFloat:
		if len(data) != 8 {
			return nil, errors.New("float particle is not 8 bytes")
		}
		return math.Float64frombits(binary.BigEndian.Uint64(data)), nil
	case ptBool:
		return len(data) > 0 && data[0] != 0, nil
	case ptString:
		return string(data), nil
	case ptBlob:
		return blobVal(bytes.Clone(data)), nil
	case ptList, ptMap:
		return decodeAll(data)
	}
	return rawStr{ptype: ptype, data: string(data)}, nil
}
