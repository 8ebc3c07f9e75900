package staging

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestParseUpstreams(t *testing.T) {
	got, err := ParseUpstreams(" 127.0.0.1:1, 10.0.0.2:8080,")
	if err != nil || len(got) != 2 || got[0] != "127.0.0.1:1" || got[1] != "10.0.0.2:8080" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", ",", "host", "a:1,b"} {
		if _, err := ParseUpstreams(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("no upstreams accepted")
	}
}

// A full mirror queue drops copies and counts them; Copy never blocks.
func TestMirrorQueueBounded(t *testing.T) {
	f, err := New(Config{Upstreams: []string{"127.0.0.1:1"}, Mirror: true, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("http://edge/v1/ad?placement=p")
	for i := 0; i < 5; i++ {
		f.Copy(&ctx) // no Run: nothing drains
	}
	if s := f.Stats(); s.MirrorDropped != 3 {
		t.Fatalf("stats %+v, want 3 dropped", s)
	}
	if len(ctx.Request.Header.Peek(ForwardedHeader)) != 0 {
		t.Fatal("Copy marked the user's own request")
	}
}

// Forward to a closed port fails fast, resets the response and counts a
// fallback.
func TestForwardFailureFallsBack(t *testing.T) {
	f, _ := New(Config{Upstreams: []string{"127.0.0.1:1"}})
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("http://edge/v1/ad?placement=p")
	ctx.Response.SetBodyString("stale")
	if err := f.Forward(&ctx); err == nil {
		t.Fatal("forward to a closed port succeeded")
	}
	if len(ctx.Response.Body()) != 0 || f.Stats().Fallbacks != 1 || IsForwarded(&ctx) {
		t.Fatalf("after failure: body %q stats %+v", ctx.Response.Body(), f.Stats())
	}
}
