package edge

import (
	"strings"
	"testing"
)

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
