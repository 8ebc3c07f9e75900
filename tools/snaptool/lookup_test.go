package snaptool

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestLookupRanksAndExplains(t *testing.T) {
	res := baseWorld().build(t)
	var out bytes.Buffer
	opts := LookupOptions{OSVersion: "13", DeviceType: "phone", Now: dataTime}
	if err := Lookup(&out, res.Path, "p-banner", "US", "android", opts); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		`(?m)^placement\s+p-banner\s+app com\.example\.game\s+format banner\s+floor 0\.50$`,
		`(?m)^blocked\s+advertisers: umbrella\s+categories: IAB25$`,
		`(?m)^list\s+banner/US/android: 7 candidates, 1 eligible$`,
		`(?m)^serves\s+c-02 \(rank 1, eCPM 5\.00\)`,
		`(?m)^1\s+c-02\s+globex\s+IAB2\s+cpc\s+0\.50\s+0\.0100\s+5\.00\s+cr-03\s+yes$`,
		`(?m)^2\s+c-05\s+umbrella\s+IAB5\s+cpm\s+4\.00\s+0\.0020\s+4\.00\s+cr-06\s+no: advertiser umbrella blocked$`,
		`(?m)^3\s+c-06\s+.*no: category IAB25 blocked \[needs segment gamers\]$`,
		`(?m)^4\s+c-04\s+.*no: not started \(starts 2027-01-16T08:00:00Z\)$`,
		`(?m)^5\s+c-01\s+.*no: android 13\.0\.0 < min 14\.0\.0 \[needs under cap 3 per 3600s\]$`,
		`(?m)^6\s+c-03\s+.*no: device phone not targeted \(tablet only\)$`,
		`(?m)^7\s+c-07\s+.*no: eCPM 0\.10 < floor 0\.50$`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("lookup output lacks %s\n%s", want, text)
		}
	}

	// Without OS version and device the same candidates become eligible;
	// later, c-04 has started; a limit of 2 still finds the first eligible.
	out.Reset()
	opts = LookupOptions{Now: dataTime.AddDate(0, 0, 2), Limit: 2, JSON: true}
	if err := Lookup(&out, res.Path, "p-banner", "US", "android", opts); err != nil {
		t.Fatal(err)
	}
	var rep LookupReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Candidates != 7 || rep.Eligible != 4 || len(rep.Rows) != 2 || rep.First == nil || rep.First.Campaign != "c-02" {
		t.Fatalf("report %+v", rep)
	}
	if !slices.Equal(rep.Rows[1].WhyNot, []string{"advertiser umbrella blocked"}) || rep.Rows[1].Eligible {
		t.Errorf("row 2 %+v", rep.Rows[1])
	}
	out.Reset()
	opts.Limit = -1
	if err := Lookup(&out, res.Path, "p-banner", "US", "android", opts); err != nil {
		t.Fatal(err)
	}
	rep = LookupReport{}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	var eligible []string
	for _, r := range rep.Rows {
		if r.Eligible {
			eligible = append(eligible, r.Campaign)
		}
	}
	if !slices.Equal(eligible, []string{"c-02", "c-04", "c-01", "c-03"}) {
		t.Errorf("eligible %v", eligible)
	}
	if c1 := rep.Rows[4]; c1.Campaign != "c-01" || !slices.Contains(c1.Needs, "android >= 14.0.0") {
		t.Errorf("c-01 needs %+v", c1)
	}

	// An interstitial placement uses the interstitial list; an empty list
	// is a no-fill, not an error.
	out.Reset()
	if err := Lookup(&out, res.Path, "p-inter", "FR", "ios", LookupOptions{Now: dataTime}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "interstitial/FR/ios: 0 candidates, 0 eligible") || !strings.Contains(out.String(), "no-fill") {
		t.Errorf("empty list output\n%s", out.String())
	}
}

func TestLookupErrors(t *testing.T) {
	res := baseWorld().build(t)
	for _, c := range []struct {
		placement, country, os string
		opts                   LookupOptions
		want                   error
		msg                    string
	}{
		{"p-nope", "US", "android", LookupOptions{}, ErrNotFound, `placement "p-nope" is not in snapshot`},
		{"p-banner", "USA", "android", LookupOptions{}, ErrBadArgument, `country "USA"`},
		{"p-banner", "us", "android", LookupOptions{}, ErrBadArgument, `upper-case: "US"`},
		{"p-banner", "US", "windows", LookupOptions{}, ErrBadArgument, `os "windows": want android or ios`},
		{"p-banner", "US", "ios", LookupOptions{OSVersion: "14.x"}, ErrBadArgument, `os version "14.x"`},
		{"p-banner", "US", "ios", LookupOptions{DeviceType: "tv"}, ErrBadArgument, `device type "tv"`},
	} {
		err := Lookup(&bytes.Buffer{}, res.Path, c.placement, c.country, c.os, c.opts)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %s %s %+v: got %v, want %v mentioning %q", c.placement, c.country, c.os, c.opts, err, c.want, c.msg)
		}
	}
}
