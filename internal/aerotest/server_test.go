package aerotest_test

import (
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"
	"github.com/aerospike/aerospike-client-go/v7/types"

	"github.com/adedge/adedge/internal/aerotest"
)

// newClient connects the real v7 client to srv.
func newClient(t *testing.T, srv *aerotest.Server) *as.Client {
	t.Helper()
	cp := as.NewClientPolicy()
	cp.Timeout = 2 * time.Second
	c, err := as.NewClientWithPolicyAndHost(cp, as.NewHost(srv.Host(), srv.Port()))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func key(t *testing.T, ns, set string, k any) *as.Key {
	t.Helper()
	kk, err := as.NewKey(ns, set, k)
	if err != nil {
		t.Fatal(err)
	}
	return kk
}

func TestClusterDiscovery(t *testing.T) {
	srv := aerotest.New(t, "test", "other")
	c := newClient(t, srv)
	nodes := c.GetNodes()
	if len(nodes) != 1 || nodes[0].GetName() != srv.NodeName() {
		t.Fatalf("nodes = %v, want one node named %s", nodes, srv.NodeName())
	}
	info, err := nodes[0].RequestInfo(as.NewInfoPolicy(), "namespaces", "build")
	if err != nil {
		t.Fatal(err)
	}
	if info["namespaces"] != "test;other" || info["build"] == "" {
		t.Fatalf("info = %v", info)
	}
	// Both namespaces are routable: a write to each succeeds.
	for _, ns := range []string{"test", "other"} {
		if err := c.PutBins(nil, key(t, ns, "s", "k"), as.NewBin("b", 1)); err != nil {
			t.Fatalf("put in %s: %v", ns, err)
		}
	}
	if got := srv.Stats().Records; got != 2 {
		t.Fatalf("records = %d, want 2", got)
	}
}

func TestPutGetTypes(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", "device-1")
	bins := as.BinMap{
		"i":    42,
		"neg":  -7,
		"f":    2.5,
		"s":    "hello",
		"blob": []byte{0, 1, 2},
		"list": []any{"a", 1, -1 << 62, []any{"nested"}},
		"map":  map[any]any{"k": "v", "n": 3},
	}
	if err := c.Put(nil, k, bins); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Get(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Generation != 1 {
		t.Errorf("generation = %d, want 1", rec.Generation)
	}
	for name, want := range bins {
		if !reflect.DeepEqual(rec.Bins[name], want) {
			t.Errorf("bin %s = %#v, want %#v", name, rec.Bins[name], want)
		}
	}
	// Update merges bins and bumps the generation.
	if err := c.PutBins(nil, k, as.NewBin("i", 43)); err != nil {
		t.Fatal(err)
	}
	rec, err = c.Get(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Generation != 2 || rec.Bins["i"] != 43 || rec.Bins["s"] != "hello" {
		t.Fatalf("after update: gen=%d bins=%v", rec.Generation, rec.Bins)
	}
}

func TestBinSelectionAndHeader(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", 99)
	if err := c.Put(nil, k, as.BinMap{"a": 1, "b": 2, "c": 3}); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Get(nil, k, "a", "c", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rec.Bins, as.BinMap{"a": 1, "c": 3}) {
		t.Fatalf("bins = %v, want only a and c", rec.Bins)
	}
	last := srv.LastRequest()
	if last.ReadAll || !reflect.DeepEqual(last.ReadBins, []string{"a", "c", "missing"}) {
		t.Fatalf("last request = %+v", last)
	}
	hdr, err := c.GetHeader(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(hdr.Bins) != 0 || hdr.Generation != 1 {
		t.Fatalf("header = %+v", hdr)
	}
	ok, err := c.Exists(nil, k)
	if err != nil || !ok {
		t.Fatalf("exists = %v, %v", ok, err)
	}
}

func TestMissDeleteAndWriteModes(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", "x")
	if _, err := c.Get(nil, k); !errors.Is(err, as.ErrKeyNotFound) {
		t.Fatalf("get missing: err = %v, want key not found", err)
	}
	create := as.NewWritePolicy(0, 0)
	create.RecordExistsAction = as.CREATE_ONLY
	if err := c.PutBins(create, k, as.NewBin("a", 1)); err != nil {
		t.Fatal(err)
	}
	err := c.PutBins(create, k, as.NewBin("a", 2))
	if err == nil || !err.Matches(types.KEY_EXISTS_ERROR) {
		t.Fatalf("create-only on existing: err = %v", err)
	}
	gen := as.NewWritePolicy(5, 0)
	gen.GenerationPolicy = as.EXPECT_GEN_EQUAL
	if err := c.PutBins(gen, k, as.NewBin("a", 3)); err == nil || !err.Matches(types.GENERATION_ERROR) {
		t.Fatalf("wrong generation: err = %v", err)
	}
	replace := as.NewWritePolicy(0, 0)
	replace.RecordExistsAction = as.REPLACE
	if err := c.Put(replace, k, as.BinMap{"b": 1}); err != nil {
		t.Fatal(err)
	}
	rec, _ := c.Get(nil, k)
	if !reflect.DeepEqual(rec.Bins, as.BinMap{"b": 1}) {
		t.Fatalf("after replace: %v", rec.Bins)
	}
	if err := c.AddBins(nil, k, as.NewBin("b", 10)); err != nil {
		t.Fatal(err)
	}
	rec, _ = c.Get(nil, k)
	if rec.Bins["b"] != 11 {
		t.Fatalf("after add: %v", rec.Bins)
	}
	existed, err := c.Delete(nil, k)
	if err != nil || !existed {
		t.Fatalf("delete = %v, %v", existed, err)
	}
	if _, err := c.Get(nil, k); !errors.Is(err, as.ErrKeyNotFound) {
		t.Fatalf("get deleted: err = %v", err)
	}
}

func TestTTLExpiry(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", "ttl")
	if err := c.PutBins(as.NewWritePolicy(0, 1), k, as.NewBin("a", 1)); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Get(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Expiration == 0 || rec.Expiration > 2 {
		t.Fatalf("expiration = %d, want about 1s", rec.Expiration)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Get(nil, k)
		if errors.Is(err, as.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not expire, last err %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMapOperations(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", "m")
	ordered := as.NewMapPolicy(as.MapOrder.KEY_ORDERED, as.MapWriteMode.UPDATE)

	rec, err := c.Operate(nil, k,
		as.MapIncrementOp(ordered, "caps", "c:0000000200", 1),
		as.MapIncrementOp(ordered, "caps", "c:0000000100", 5),
		as.MapIncrementOp(ordered, "caps", "c:0000000200", 2),
		as.MapPutOp(ordered, "caps", "d:0000000100", 7),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Bins["caps"]; !reflect.DeepEqual(got, []any{1, 5, 3, 3}) {
		t.Fatalf("operate results = %#v", got)
	}
	rec, err = c.Operate(nil, k,
		as.MapGetByKeyOp("caps", "c:0000000200", as.MapReturnType.VALUE),
		as.MapSizeOp("caps"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Bins["caps"]; !reflect.DeepEqual(got, []any{3, 3}) {
		t.Fatalf("get/size = %#v", got)
	}
	// Range removal is [begin, end) and only touches keys in range.
	rec, err = c.Operate(nil, k, as.MapRemoveByKeyRangeOp("caps", "c:", "c:0000000200", as.MapReturnType.KEY))
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Bins["caps"]; !reflect.DeepEqual(got, []any{"c:0000000100"}) {
		t.Fatalf("removed = %#v", got)
	}
	// A key-ordered map reads back in key order, as []MapPair.
	rec, err = c.Get(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	want := []as.MapPair{{Key: "c:0000000200", Value: 3}, {Key: "d:0000000100", Value: 7}}
	if got := rec.Bins["caps"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("caps = %#v, want %#v", got, want)
	}
	// Unsupported operations get an error result, not a wrong answer.
	_, err = c.Operate(nil, k, as.ListAppendOp("caps", 1))
	if err == nil {
		t.Fatal("list op on a map bin succeeded")
	}
}

func TestSetDelay(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", "slow")
	if err := c.PutBins(nil, k, as.NewBin("a", 1)); err != nil {
		t.Fatal(err)
	}
	// The delay is far past any scheduling stall a loaded machine adds (a
	// 50 ms timeout once took 408 ms at load 21): a client that waited for
	// the answer takes 10 s, one that honoured its timeout well under 5 s.
	srv.SetDelay(10 * time.Second)
	p := as.NewPolicy()
	p.TotalTimeout = 50 * time.Millisecond
	p.MaxRetries = 0
	start := time.Now()
	_, err := c.Get(p, k)
	if err == nil || !err.Matches(types.TIMEOUT) {
		t.Fatalf("slow get: err = %v, want timeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("slow get took %v with a 50ms timeout", el)
	}
	srv.SetDelay(0)
	p.TotalTimeout = 2 * time.Second
	if _, err := c.Get(p, k); err != nil {
		t.Fatalf("after delay removed: %v", err)
	}
}

func TestDropNextRequests(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", "drop")
	srv.DropNextRequests(1)
	p := as.NewPolicy()
	p.MaxRetries = 0
	if _, err := c.Get(p, k); err == nil || errors.Is(err, as.ErrKeyNotFound) {
		t.Fatalf("dropped request: err = %v, want a network error", err)
	}
	if _, err := c.Get(p, k); !errors.Is(err, as.ErrKeyNotFound) {
		t.Fatalf("next request: err = %v, want key not found", err)
	}
}

func TestDropConnectionsAndClose(t *testing.T) {
	srv := aerotest.New(t)
	c := newClient(t, srv)
	k := key(t, "test", "s", "d")
	if err := c.PutBins(nil, k, as.NewBin("a", 1)); err != nil {
		t.Fatal(err)
	}
	srv.SetDelay(2 * time.Second)
	done := make(chan as.Error, 1)
	go func() {
		p := as.NewPolicy()
		p.TotalTimeout = 5 * time.Second
		p.MaxRetries = 0
		_, err := c.Get(p, k)
		done <- err
	}()
	for srv.Stats().DataRequests < 2 { // the put, then the get in flight
		time.Sleep(5 * time.Millisecond)
	}
	srv.DropConnections()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("get succeeded on a dropped connection")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("get did not return after its connection was dropped")
	}

	addr := srv.Addr()
	srv.Close()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("port still open after Close")
	}
}

func TestNamespaceValidation(t *testing.T) {
	if _, err := aerotest.Start("bad;name"); err == nil {
		t.Fatal("Start accepted a namespace with ';'")
	}
	srv := aerotest.New(t)
	c := newClient(t, srv)
	// The client refuses namespaces missing from the partition map.
	if _, err := c.Get(nil, key(t, "nope", "s", 1)); err == nil {
		t.Fatal("get in unknown namespace succeeded")
	}
}
