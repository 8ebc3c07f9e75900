package edge

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rawLine sends requestURI verbatim on the request line (the fasthttp
// client would rewrite an absolute form or an unnormalised path) and reads
// the answer.
func (e *env) rawLine(method, requestURI string) *resp {
	e.t.Helper()
	c, err := e.ln.Dial()
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: edge\r\n\r\n", method, requestURI); err != nil {
		e.t.Fatal(err)
	}
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(res)
	res.SkipBody = method == "HEAD"
	if err := res.Read(bufio.NewReader(c)); err != nil {
		e.t.Fatalf("%s %s: %v", method, requestURI, err)
	}
	out := &resp{code: res.StatusCode(), body: append([]byte(nil), res.Body()...), header: map[string]string{}}
	for k, v := range res.Header.All() {
		out.header[strings.ToLower(string(k))] = string(v)
	}
	return out
}

// TestAdRequestLineSpellings: every spelling of an ad request that
// fasthttp resolves to /v1/ad answers as the plain one does (the query is
// read raw, after fasthttp's URI parse: a fragment is not part of it);
// near misses stay 404.
func TestAdRequestLineSpellings(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.search(1, anyCampaign)[0]
	q.device = "dev-spelling"
	query := strings.TrimPrefix(q.uri(), "/v1/ad")
	for _, uri := range []string{
		"/v1/ad" + query,
		"/v1/ad" + query + "#frag&placement=other",
		"/v1/ad" + query + "&&",
		"http://edge/v1/ad" + query,
		"/v1//ad" + query,
		"/v1/./ad" + query,
		"/v1/%61d" + query,
	} {
		t.Run(uri, func(t *testing.T) { checkFill(t, e, e.rawLine("GET", uri), q, "production") })
	}
	// No query at all: the same 400 on either route.
	for _, uri := range []string{"/v1/ad", "/v1/ad?", "http://edge/v1/ad"} {
		r := e.rawLine("GET", uri)
		if r.code != 400 {
			t.Errorf("GET %s: %v, want 400", uri, r)
			continue
		}
		if eb := decodeError(t, r); eb.Field != "placement" {
			t.Errorf("GET %s: %+v, want the missing placement named", uri, eb)
		}
	}
	for _, uri := range []string{"/v1/adx" + query, "/v1/ad/" + query, "/v1/a"} {
		if r := e.rawLine("GET", uri); r.code != 404 {
			t.Errorf("GET %s: %v, want 404", uri, r)
		}
	}
	if r := e.rawLine("HEAD", "/v1/ad"+query); r.code != 405 {
		t.Errorf("HEAD: %v, want 405", r)
	}
}
