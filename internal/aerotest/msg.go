package aerotest

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"time"
)

// Result codes (types.ResultCode in the client).
const (
	rcOK                = 0
	rcServerError       = 1
	rcKeyNotFound       = 2
	rcGeneration        = 3
	rcParameter         = 4
	rcKeyExists         = 5
	rcBinType           = 12
	rcUnsupported       = 16
	rcInvalidNamespace  = 20
	msgHeaderSize       = 22
	fieldNamespace      = 0
	fieldSet            = 1
	fieldKey            = 2
	fieldDigest         = 4
	opRead              = 1
	opWrite             = 2
	opCDTRead           = 3
	opCDTModify         = 4
	opAdd               = 5
	opTouch             = 11
	opDelete            = 14
	info1GetAll         = 1 << 1
	info1Batch          = 1 << 3
	info1NoBinData      = 1 << 5
	info2Write          = 1 << 0
	info2Delete         = 1 << 1
	info2Generation     = 1 << 2
	info2GenerationGT   = 1 << 3
	info2CreateOnly     = 1 << 5
	info2RespondAllOps  = 1 << 7
	info3UpdateOnly     = 1 << 3
	info3CreateOrReplac = 1 << 4
	info3ReplaceOnly    = 1 << 5
	ttlNever            = math.MaxUint32
	ttlDontUpdate       = math.MaxUint32 - 1
)

type operation struct {
	op    byte
	ptype byte
	name  string
	value []byte
}

type request struct {
	info1, info2, info3 byte
	generation          uint32
	ttl                 uint32
	ns, set             string
	digest              []byte
	ops                 []operation
}

// opError carries a result code out of an operation.
type opError byte

func (e opError) Error() string { return "result code " + strconv.Itoa(int(e)) }

// parseRequest decodes the AS_MSG body; ok=false means the framing is
// broken and the connection should answer PARAMETER_ERROR.
func parseRequest(b []byte) (*request, byte) {
	if len(b) < msgHeaderSize || int(b[0]) < msgHeaderSize || int(b[0]) > len(b) {
		return nil, rcParameter
	}
	r := &request{
		info1:      b[1],
		info2:      b[2],
		info3:      b[3],
		generation: binary.BigEndian.Uint32(b[6:]),
		ttl:        binary.BigEndian.Uint32(b[10:]),
	}
	nfields := int(binary.BigEndian.Uint16(b[18:]))
	nops := int(binary.BigEndian.Uint16(b[20:]))
	off := int(b[0])
	for i := 0; i < nfields; i++ {
		if len(b)-off < 5 {
			return nil, rcParameter
		}
		size := int(binary.BigEndian.Uint32(b[off:]))
		if size < 1 || size > len(b)-off-4 {
			return nil, rcParameter
		}
		typ := b[off+4]
		data := b[off+5 : off+4+size]
		switch typ {
		case fieldNamespace:
			r.ns = string(data)
		case fieldSet:
			r.set = string(data)
		case fieldDigest:
			r.digest = data
		case fieldKey:
			// user key: stored only as its digest here, like SendKey=false
		default:
			return nil, rcUnsupported // filter expressions, batch, scan, query, UDF
		}
		off += 4 + size
	}
	for i := 0; i < nops; i++ {
		if len(b)-off < 8 {
			return nil, rcParameter
		}
		size := int(binary.BigEndian.Uint32(b[off:]))
		nameLen := int(b[off+7])
		if size < 4+nameLen || size > len(b)-off-4 {
			return nil, rcParameter
		}
		r.ops = append(r.ops, operation{
			op:    b[off+4],
			ptype: b[off+5],
			name:  string(b[off+8 : off+8+nameLen]),
			value: b[off+8+nameLen : off+4+size],
		})
		off += 4 + size
	}
	if off != len(b) {
		return nil, rcParameter
	}
	return r, rcOK
}

type resultBin struct {
	name  string
	ptype byte
	data  []byte
}

// response builds the AS_MSG answer.
func response(rc byte, gen uint16, voidTime int64, bins []resultBin) []byte {
	body := make([]byte, msgHeaderSize, 64)
	body[0] = msgHeaderSize
	body[5] = rc
	binary.BigEndian.PutUint32(body[6:], uint32(gen))
	if voidTime > 0 {
		binary.BigEndian.PutUint32(body[10:], uint32(voidTime-citrusEpoch))
	}
	binary.BigEndian.PutUint16(body[20:], uint16(len(bins)))
	for _, rb := range bins {
		body = binary.BigEndian.AppendUint32(body, uint32(4+len(rb.name)+len(rb.data)))
		body = append(body, opRead, rb.ptype, 0, byte(len(rb.name)))
		body = append(body, rb.name...)
		body = append(body, rb.data...)
	}
	return frame(msgTypeAS, body)
}

func (s *Server) handleMessage(b []byte) []byte {
	req, rc := parseRequest(b)
	if rc != rcOK {
		return response(rc, 0, 0, nil)
	}
	if req.info1&info1Batch != 0 {
		return response(rcUnsupported, 0, 0, nil)
	}
	if len(req.digest) != 20 {
		return response(rcParameter, 0, 0, nil) // scans/queries have no digest
	}
	if !s.hasNamespace(req.ns) {
		return response(rcInvalidNamespace, 0, 0, nil)
	}
	key := recordKey{ns: req.ns}
	copy(key.digest[:], req.digest)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = describe(req)

	now := time.Now().Unix()
	rec := s.records[key]
	// A record lives through its void-time second, as the server's
	// as_record_is_expired (void_time < now) has it: a TTL of 1 s written
	// at 12:00:00.99 still reads at 12:00:01.01. Expiring at void_time
	// itself made a 1 s TTL last 10 ms (TestTTLExpiry, once at load 23).
	if rec != nil && rec.voidTime > 0 && rec.voidTime < now {
		delete(s.records, key) // expired
		rec = nil
	}
	isWrite := req.info2&(info2Write|info2Delete) != 0

	if !isWrite {
		if rec == nil {
			return response(rcKeyNotFound, 0, 0, nil)
		}
		bins, err := s.readOps(req, rec)
		if err != nil {
			return response(codeOf(err), 0, 0, nil)
		}
		return response(rcOK, rec.gen, rec.voidTime, bins)
	}

	if req.info2&info2Delete != 0 {
		if rec == nil {
			return response(rcKeyNotFound, 0, 0, nil)
		}
		delete(s.records, key)
		return response(rcOK, 0, 0, nil)
	}

	// Existence and generation checks.
	switch {
	case req.info2&info2CreateOnly != 0 && rec != nil:
		return response(rcKeyExists, 0, 0, nil)
	case req.info3&(info3UpdateOnly|info3ReplaceOnly) != 0 && rec == nil:
		return response(rcKeyNotFound, 0, 0, nil)
	case req.info2&info2Generation != 0 && (rec == nil || uint32(rec.gen) != req.generation):
		return response(rcGeneration, 0, 0, nil)
	case req.info2&info2GenerationGT != 0 && rec != nil && req.generation <= uint32(rec.gen):
		return response(rcGeneration, 0, 0, nil)
	}

	// Work on a copy so a failing op leaves the record untouched.
	work := &record{set: req.set, bins: map[string]binValue{}}
	if rec != nil {
		work.set, work.gen, work.voidTime = rec.set, rec.gen, rec.voidTime
		if req.info3&(info3CreateOrReplac|info3ReplaceOnly) == 0 {
			for k, v := range rec.bins {
				work.bins[k] = v
			}
		}
	}
	bins, err := s.writeOps(req, work)
	if err != nil {
		return response(codeOf(err), 0, 0, nil)
	}
	switch req.ttl {
	case ttlDontUpdate:
		if rec == nil {
			work.voidTime = 0
		}
	case 0, ttlNever: // namespace default: never expires here
		work.voidTime = 0
	default:
		work.voidTime = now + int64(req.ttl)
	}
	work.gen++
	if work.gen == 0 {
		work.gen = 1
	}
	if len(work.bins) == 0 {
		delete(s.records, key) // a record without bins does not exist
	} else {
		s.records[key] = work
	}
	return response(rcOK, work.gen, work.voidTime, bins)
}

func (s *Server) hasNamespace(ns string) bool {
	for _, n := range s.namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

func describe(req *request) Request {
	r := Request{
		Namespace: req.ns,
		Set:       req.set,
		ReadAll:   req.info1&info1GetAll != 0,
		Write:     req.info2&(info2Write|info2Delete) != 0,
		Ops:       len(req.ops),
	}
	for _, op := range req.ops {
		if op.op == opRead {
			if op.name == "" {
				r.ReadAll = true
			} else {
				r.ReadBins = append(r.ReadBins, op.name)
			}
		}
	}
	return r
}

func codeOf(err error) byte {
	var oe opError
	if errors.As(err, &oe) {
		return byte(oe)
	}
	return rcServerError
}

// readOps answers a request without writes.
func (s *Server) readOps(req *request, rec *record) ([]resultBin, error) {
	if len(req.ops) == 0 {
		if req.info1&info1NoBinData != 0 {
			return nil, nil // header only (Exists, GetHeader)
		}
		return allBins(rec), nil
	}
	var out []resultBin
	for _, op := range req.ops {
		switch op.op {
		case opRead:
			if op.name == "" {
				out = append(out, allBins(rec)...)
				continue
			}
			if b, ok := rec.bins[op.name]; ok {
				out = append(out, resultBin{op.name, b.ptype, b.data})
			}
		case opCDTRead:
			v, err := cdtOp(rec, op, false)
			if err != nil {
				return nil, err
			}
			pt, data := particle(v)
			out = append(out, resultBin{op.name, pt, data})
		default:
			return nil, opError(rcParameter)
		}
	}
	return out, nil
}

func allBins(rec *record) []resultBin {
	out := make([]resultBin, 0, len(rec.bins))
	for name, b := range rec.bins {
		out = append(out, resultBin{name, b.ptype, b.data})
	}
	return out
}

// writeOps applies a write or operate request to rec (a private copy).
func (s *Server) writeOps(req *request, rec *record) ([]resultBin, error) {
	respondAll := req.info2&info2RespondAllOps != 0
	var out []resultBin
	for _, op := range req.ops {
		if len(op.name) > 15 {
			return nil, opError(rcParameter) // server bin name limit
		}
		var result any
		reads := false
		switch op.op {
		case opWrite:
			if op.ptype == ptNull {
				delete(rec.bins, op.name)
			} else {
				if op.ptype == ptList || op.ptype == ptMap {
					if _, err := decodeAll(op.value); err != nil {
						return nil, opError(rcParameter)
					}
				}
				rec.bins[op.name] = binValue{op.ptype, append([]byte(nil), op.value...)}
			}
		case opAdd:
			if op.ptype != ptInteger {
				return nil, opError(rcParameter)
			}
			inc, _ := fromParticle(ptInteger, op.value)
			cur := int64(0)
			if b, ok := rec.bins[op.name]; ok {
				if b.ptype != ptInteger {
					return nil, opError(rcBinType)
				}
				v, _ := fromParticle(ptInteger, b.data)
				cur = v.(int64)
			}
			pt, data := particle(cur + inc.(int64))
			rec.bins[op.name] = binValue{pt, data}
		case opTouch:
		case opDelete:
			clear(rec.bins)
		case opRead:
			reads = true
			if op.name == "" {
				out = append(out, allBins(rec)...)
				continue
			}
			if b, ok := rec.bins[op.name]; ok {
				out = append(out, resultBin{op.name, b.ptype, b.data})
			}
			continue
		case opCDTRead, opCDTModify:
			reads = true
			v, err := cdtOp(rec, op, op.op == opCDTModify)
			if err != nil {
				return nil, err
			}
			result = v
		default:
			return nil, opError(rcParameter)
		}
		if reads || respondAll {
			pt, data := particle(result)
			out = append(out, resultBin{op.name, pt, data})
		}
	}
	return out, nil
}
