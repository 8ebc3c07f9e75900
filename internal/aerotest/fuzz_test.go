package aerotest

import (
	"encoding/binary"
	"testing"
)

// FuzzHandleMessage feeds arbitrary AS_MSG bodies to the server: it must
// answer every one with a well-formed frame and never panic.
func FuzzHandleMessage(f *testing.F) {
	s, err := Start()
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Add(testRequest(1, 0, opRead, 0, "seg", nil))
	// A map bin write and a map increment (raw op code 73, then params).
	f.Add(testRequest(0, info2Write, opWrite, ptMap, "caps", []byte{0x81, 0xa2, ptString, 'k', 0x01}))
	f.Add(testRequest(0, info2Write, opCDTModify, ptBlob, "caps", []byte{0, 73, 0x93, 0xa2, ptString, 'k', 1, 1}))
	f.Add([]byte{})
	f.Add(make([]byte, msgHeaderSize))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := s.handleMessage(body)
		if len(resp) < 8+msgHeaderSize {
			t.Fatalf("short response %x", resp)
		}
		if size := binary.BigEndian.Uint64(resp) & 0xffffffffffff; int(size) != len(resp)-8 {
			t.Fatalf("frame size %d, body %d", size, len(resp)-8)
		}
	})
}

// FuzzDecode checks the msgpack decoder never panics and that what it
// decodes re-encodes to something it decodes to an equal value.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x93, 0x01, 0xa2, 0x03, 'x', 0xc0})
	f.Add([]byte{0x82, 0xc7, 0x00, 0x01, 0xc0, 0xa2, 0x03, 'k', 0x05})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xd4, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeAll(b)
		if err != nil {
			return
		}
		var e encoder
		e.value(v)
		v2, err := decodeAll(e.b)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v (%x)", err, e.b)
		}
		if compare(v, v2) != 0 {
			t.Fatalf("round trip changed %#v into %#v", v, v2)
		}
	})
}

// testRequest builds an AS_MSG body for namespace "test" with one operation.
func testRequest(info1, info2, op, ptype byte, bin string, value []byte) []byte {
	b := make([]byte, msgHeaderSize)
	b[0], b[1], b[2] = msgHeaderSize, info1, info2
	binary.BigEndian.PutUint16(b[18:], 3)
	binary.BigEndian.PutUint16(b[20:], 1)
	field := func(typ byte, data []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)+1))
		b = append(b, typ)
		b = append(b, data...)
	}
	field(fieldNamespace, []byte("test"))
	field(fieldSet, []byte("s"))
	field(fieldDigest, make([]byte, 20))
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(bin)+len(value)))
	b = append(b, op, ptype, 0, byte(len(bin)))
	b = append(b, bin...)
	return append(b, value...)
}
