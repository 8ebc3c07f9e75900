package pacing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"
	"github.com/aerospike/aerospike-client-go/v7/types"

	"github.com/adedge/adedge/server/profiles"
)

// Record layout (docs/PACING.md; keep both in sync). The day record's
// user key is DayRecordKey, the lifetime record's LifeRecordKey.
const (
	BinSpend  = "spend"  // integer: billed micros counted
	BinServed = "served" // integer: served value micros (day records only)
	BinP      = "p"      // integer: the serve probability an edge last published, in millionths
	BinPAt    = "p_at"   // integer: unix seconds it was published

	// DayRecordTTL keeps day records for a week of reports; lifetime
	// records never expire.
	DayRecordTTL = 8 * 24 * time.Hour
)

var (
	dayBins  = []string{BinSpend, BinServed, BinP, BinPAt}
	lifeBins = []string{BinSpend}
)

// Aerospike is the production Store: every flush is one batch of
// server-side adds that also read the totals back, so concurrent edges
// never lose an increment and each edge sees the fleet's totals in the
// same round trip.
type Aerospike struct {
	client  *as.Client
	ns, set string
	name    string
	dayTTL  uint32
}

// OpenAerospike connects to aerospike://HOST:PORT[,...]/NAMESPACE/SET. An
// unreachable server is not an error: the edge starts, paces on what it
// knows (budgeted campaigns wait for the first good read) and the client
// keeps trying.
func OpenAerospike(spec string) (*Aerospike, error) {
	cfg, err := profiles.ParseAerospikeSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("--spend: %w", err)
	}
	hosts := make([]*as.Host, 0, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		host, port, _ := net.SplitHostPort(h) // checked by ParseAerospikeSpec
		p, _ := strconv.Atoi(port)
		hosts = append(hosts, as.NewHost(host, p))
	}
	cp := as.NewClientPolicy()
	cp.Timeout = 2 * time.Second
	cp.FailIfNotConnected = false
	cp.MinConnectionsPerNode = 2
	cp.ConnectionQueueSize = 16
	cp.MaxErrorRate = 0
	client, aerr := as.NewClientWithPolicyAndHost(cp, hosts...)
	if aerr != nil && client == nil {
		return nil, fmt.Errorf("--spend %s: %w", spec, aerr)
	}
	return &Aerospike{client: client, ns: cfg.Namespace, set: cfg.Set,
		name:   fmt.Sprintf("aerospike://%s/%s/%s", strings.Join(cfg.Hosts, ","), cfg.Namespace, cfg.Set),
		dayTTL: uint32(DayRecordTTL / time.Second)}, nil
}

func (a *Aerospike) batchPolicy(ctx context.Context) *as.BatchPolicy {
	p := as.NewBatchPolicy()
	p.MaxRetries = 0 // a failed add is kept by the caller and sent again
	p.TotalTimeout = time.Second
	if dl, ok := ctx.Deadline(); ok {
		p.TotalTimeout = max(time.Millisecond, time.Until(dl))
	}
	p.SocketTimeout = p.TotalTimeout
	return p
}

// Apply implements Store: per campaign, one write to the day record (add
// spend and served, read both) and one to the lifetime record (add spend,
// read it), all in one batch.
func (a *Aerospike) Apply(ctx context.Context, deltas []Delta, out []Totals) error {
	dayPol := as.NewBatchWritePolicy()
	dayPol.Expiration = a.dayTTL
	lifePol := as.NewBatchWritePolicy()
	lifePol.Expiration = as.TTLDontExpire
	recs := make([]as.BatchRecordIfc, 0, 2*len(deltas))
	for _, d := range deltas {
		dk, err := as.NewKey(a.ns, a.set, DayRecordKey(d.Campaign, d.Day))
		if err != nil {
			return err
		}
		lk, err := as.NewKey(a.ns, a.set, LifeRecordKey(d.Campaign))
		if err != nil {
			return err
		}
		ops := []*as.Operation{as.AddOp(as.NewBin(BinSpend, d.Spend)), as.AddOp(as.NewBin(BinServed, d.Served)),
			as.GetBinOp(BinSpend), as.GetBinOp(BinServed)}
		if d.At != 0 {
			ops = append(ops, as.PutOp(as.NewBin(BinP, int64(d.P*1e6))), as.PutOp(as.NewBin(BinPAt, d.At)))
		}
		recs = append(recs,
			as.NewBatchWrite(dayPol, dk, ops...),
			as.NewBatchWrite(lifePol, lk, as.AddOp(as.NewBin(BinSpend, d.Spend)), as.GetBinOp(BinSpend)))
	}
	if err := a.batch(ctx, recs, "batch operate", false); err != nil {
		return err
	}
	for i := range deltas {
		day, life := recs[2*i].BatchRec(), recs[2*i+1].BatchRec()
		t := &out[i]
		*t = Totals{}
		// The day record's add carries the campaign's delta; the lifetime
		// record only mirrors it. A failed lifetime add after a good day
		// add is reported but not retried (the lifetime total runs short by
		// it: docs/PACING.md).
		t.Applied = day.ResultCode == types.OK
		if err := recordErr(day); err != nil {
			t.Err = err
			continue
		}
		var ok1, ok2, ok3 bool
		t.Day, ok1 = counter(day.Record, BinSpend)
		t.Served, ok2 = counter(day.Record, BinServed)
		if err := recordErr(life); err != nil {
			t.Err = err
			continue
		}
		t.Life, ok3 = counter(life.Record, BinSpend)
		if !ok1 || !ok2 || !ok3 {
			t.Err = ErrBadRecord
		}
	}
	return nil
}

func recordErr(r *as.BatchRecord) error {
	switch r.ResultCode {
	case types.OK:
		if r.Record == nil {
			return ErrNoRecord
		}
		return nil
	case types.KEY_NOT_FOUND_ERROR:
		return ErrNoRecord
	case types.BIN_TYPE_ERROR, types.PARAMETER_ERROR:
		return fmt.Errorf("%w (%v)", ErrBadRecord, r.ResultCode)
	}
	if r.Err != nil {
		return r.Err
	}
	return fmt.Errorf("aerospike result %v", r.ResultCode)
}

// counter reads a bin as a non-negative integer counter.
func counter(rec *as.Record, bin string) (int64, bool) {
	if rec == nil {
		return 0, false
	}
	v, ok := rec.Bins[bin]
	if !ok {
		return 0, false
	}
	if l, isList := v.(as.OpResults); isList && len(l) > 0 {
		v = l[len(l)-1]
	} else if l, isList := v.([]any); isList && len(l) > 0 {
		v = l[len(l)-1]
	}
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	default:
		return 0, false
	}
	return n, n >= 0
}

// Read implements Store with one batch read of the day and lifetime
// records.
func (a *Aerospike) Read(ctx context.Context, keys []Delta, out []Totals) error {
	recs := make([]as.BatchRecordIfc, 0, 2*len(keys))
	for _, d := range keys {
		dk, err := as.NewKey(a.ns, a.set, DayRecordKey(d.Campaign, d.Day))
		if err != nil {
			return err
		}
		lk, err := as.NewKey(a.ns, a.set, LifeRecordKey(d.Campaign))
		if err != nil {
			return err
		}
		recs = append(recs, as.NewBatchRead(nil, dk, dayBins), as.NewBatchRead(nil, lk, lifeBins))
	}
	if err := a.batch(ctx, recs, "batch read", true); err != nil {
		return err
	}
	for i := range keys {
		day, life := recs[2*i].BatchRec(), recs[2*i+1].BatchRec()
		t := &out[i]
		*t = Totals{}
		if err := recordErr(life); err == nil {
			var ok bool
			if t.Life, ok = counter(life.Record, BinSpend); !ok {
				t.Err = ErrBadRecord
			}
		} else if !errors.Is(err, ErrNoRecord) {
			t.Err = err
		}
		if err := recordErr(day); err != nil {
			if t.Err == nil {
				t.Err = err
			}
			continue
		}
		var ok1, ok2 bool
		t.Day, ok1 = counter(day.Record, BinSpend)
		t.Served, ok2 = counter(day.Record, BinServed)
		if (!ok1 || !ok2) && t.Err == nil {
			t.Err = ErrBadRecord
		}
		if p, ok := counter(day.Record, BinP); ok {
			t.P = float64(p) / 1e6
			t.PAt, _ = counter(day.Record, BinPAt)
		}
	}
	return nil
}

// Name implements Store.
func (a *Aerospike) Name() string { return a.name }

// Close implements Store.
func (a *Aerospike) Close() error {
	a.client.Close()
	return nil
}

// batch runs one BatchOperate. Record-level failures come back per record
// (the callers read each one); a call-level error with no record answered
// means nothing is known, and is the caller's error. For reads, a missing
// record is an answer (no spend yet).
func (a *Aerospike) batch(ctx context.Context, recs []as.BatchRecordIfc, what string, missingIsAnswer bool) error {
	aerr := a.client.BatchOperate(a.batchPolicy(ctx), recs)
	if aerr == nil {
		return nil
	}
	for _, r := range recs {
		rc := r.BatchRec().ResultCode
		if rc == types.OK || (missingIsAnswer && rc == types.KEY_NOT_FOUND_ERROR) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", what, aerr)
}
