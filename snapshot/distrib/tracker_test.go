package distrib

import (
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

var testIH = strings.Repeat("\x01", 20)

func announceQuery(ih, peer string, port, left string, extra ...string) string {
	q := url.Values{"info_hash": {ih}, "peer_id": {peer}, "port": {port}, "left": {left}, "compact": {"1"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q.Encode()
}

func doAnnounce(t testing.TB, tr *Tracker, remote, query string) (map[string]any, []byte) {
	t.Helper()
	req := httptest.NewRequest("GET", "/announce?"+query, nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	tr.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	var m map[string]any
	if err := bencode.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("response %q is not a bencoded dictionary: %v", rec.Body.Bytes(), err)
	}
	return m, rec.Body.Bytes()
}

func keys(m map[string]any) string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

// TestAnnounceResponseBEP3: a successful announce carries no `failure
// reason` (its presence alone means failure to aria2c, Transmission and
// libtorrent), no empty peers6 and no tracker id; peers are compact.
func TestAnnounceResponseBEP3(t *testing.T) {
	tr := &Tracker{Allowed: func(ih string) bool { return ih == hexHash([20]byte([]byte(testIH))) }}
	m, raw := doAnnounce(t, tr, "127.0.0.5:40000", announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "6881", "0"))
	if keys(m) != "complete,incomplete,interval,peers" || m["peers"] != "" || m["complete"] != int64(1) {
		t.Fatalf("first announce: %q", raw)
	}
	if string(raw) != "d8:completei1e10:incompletei0e8:intervali30e5:peers0:e" {
		t.Fatalf("bytes %q", raw)
	}
	m, raw = doAnnounce(t, tr, "127.0.0.6:40001", announceQuery(testIH, "-TR3000-bbbbbbbbbbbb", "51413", "1000", "event", "started"))
	if keys(m) != "complete,incomplete,interval,peers" || m["peers"] != "\x7f\x00\x00\x05\x1a\xe1" || m["incomplete"] != int64(1) {
		t.Fatalf("second announce: %q", raw)
	}
	// Non-compact (BEP 3 dictionaries).
	m, _ = doAnnounce(t, tr, "127.0.0.7:40002", announceQuery(testIH, "-XX0000-cccccccccccc", "7000", "5", "compact", "0"))
	peers, _ := m["peers"].([]any)
	if len(peers) != 2 {
		t.Fatalf("non-compact peers %v", m["peers"])
	}
	// IPv6 peers go to peers6, present only then.
	m, raw = doAnnounce(t, tr, "[2001:db8::1]:40003", announceQuery(testIH, "-XX0000-dddddddddddd", "7001", "5"))
	if keys(m) != "complete,incomplete,interval,peers" {
		t.Fatalf("v6 announcer: %q", raw)
	}
	m, raw = doAnnounce(t, tr, "127.0.0.8:40004", announceQuery(testIH, "-XX0000-eeeeeeeeeeee", "7002", "5"))
	if keys(m) != "complete,incomplete,interval,peers,peers6" || len(m["peers6"].(string)) != 18 || len(m["peers"].(string)) != 18 {
		t.Fatalf("with a v6 peer: %q", raw)
	}
	// A stopped peer leaves the swarm.
	doAnnounce(t, tr, "127.0.0.6:40001", announceQuery(testIH, "-TR3000-bbbbbbbbbbbb", "51413", "1000", "event", "stopped"))
	if n := tr.Peers(hexHash([20]byte([]byte(testIH)))); n != 4 {
		t.Fatalf("%d peers after a stop, want 4", n)
	}
}

// TestAnnounceFailures: refusals are a 200 whose only key is `failure
// reason`, with the reason in it.
func TestAnnounceFailures(t *testing.T) {
	tr := &Tracker{Allowed: func(string) bool { return false }}
	for _, tc := range []struct{ query, want string }{
		{announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "6881", "0"), "torrent not published"},
		{announceQuery("short", "-AR1360-aaaaaaaaaaaa", "6881", "0"), "info_hash"},
		{announceQuery(testIH, "short", "6881", "0"), "peer_id"},
		{announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "0", "0"), "port"},
		{announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "6881", "-1"), "left"},
		{announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "6881", "0", "event", "bogus"), "event"},
		{announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "6881", "0", "numwant", "x"), "numwant"},
	} {
		m, raw := doAnnounce(t, tr, "127.0.0.5:1", tc.query)
		r, _ := m["failure reason"].(string)
		if keys(m) != "failure reason" || !strings.Contains(r, tc.want) {
			t.Errorf("%s: %q, want only a failure reason about %q", tc.query, raw, tc.want)
		}
	}
}

// FuzzAnnounce: any query gets a bencoded dictionary that either fails
// (failure reason alone, non-empty) or succeeds (no failure reason; the
// swarm's other peers, one IPv4 and one IPv6, in well-formed peers and
// peers6).
func FuzzAnnounce(f *testing.F) {
	f.Add(announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "6881", "0"))
	f.Add(announceQuery(testIH, "-AR1360-aaaaaaaaaaaa", "6881", "12", "event", "stopped", "numwant", "3", "compact", "0"))
	f.Add(announceQuery(testIH, "-TR3000-zzzzzzzzzzzz", "51413", "100", "event", "started", "numwant", "0"))
	f.Add(announceQuery(strings.Repeat("\x02", 20), "-AR1360-aaaaaaaaaaaa", "6881", "0"))
	f.Add("info_hash=%00&port=1")
	allowed := hexHash([20]byte([]byte(testIH)))
	f.Fuzz(func(t *testing.T, query string) {
		tr := &Tracker{Allowed: func(ih string) bool { return ih == allowed }}
		doAnnounce(t, tr, "127.0.0.5:40000", announceQuery(testIH, "-XX0000-v4v4v4v4v4v4", "7000", "5"))
		doAnnounce(t, tr, "[2001:db8::1]:40003", announceQuery(testIH, "-XX0000-v6v6v6v6v6v6", "7001", "5"))
		req := httptest.NewRequest("GET", "/announce", nil)
		req.URL.RawQuery = query
		req.RemoteAddr = "127.0.0.9:1234"
		rec := httptest.NewRecorder()
		tr.Handler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%q: status %d", query, rec.Code)
		}
		var m map[string]any
		if err := bencode.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%q: %v", rec.Body.Bytes(), err)
		}
		if r, failed := m["failure reason"]; failed {
			if keys(m) != "failure reason" || r == "" {
				t.Fatalf("failure with other keys or no reason: %q", rec.Body.Bytes())
			}
			return
		}
		switch k := keys(m); k {
		case "complete,incomplete,interval,peers", "complete,incomplete,interval,peers,peers6":
		default:
			t.Fatalf("success keys %s: %q", k, rec.Body.Bytes())
		}
		switch p := m["peers"].(type) {
		case string: // compact: 6 bytes a peer
			if len(p)%6 != 0 {
				t.Fatalf("compact peers of %d bytes: %q", len(p), rec.Body.Bytes())
			}
		case []any: // BEP 3 dictionaries
		default:
			t.Fatalf("peers %T: %q", p, rec.Body.Bytes())
		}
		if p6, ok := m["peers6"].(string); ok && (len(p6) == 0 || len(p6)%18 != 0) {
			t.Fatalf("peers6 of %d bytes: %q", len(p6), rec.Body.Bytes())
		}
	})
}
