// Package inventory reads and validates the data pipeline's inventory export:
// a directory of JSONL files (one JSON object a line) plus experiments.json.
// Every field is documented in docs/INPUTS.md; this file is the schema.
//
// Validation is all-or-nothing: Load reads every file, collects every problem
// as a "file:line: message" Problem, and returns an error if there is any, so
// a bad export is refused before the builder writes a byte.
package inventory

import "github.com/adedge/adedge/abtest"

// File names inside an inventory directory.
const (
	CampaignsFile   = "campaigns.jsonl"
	CreativesFile   = "creatives.jsonl"
	PlacementsFile  = "placements.jsonl"
	PredictionsFile = "predictions.jsonl"
	ExperimentsFile = "experiments.json"
	ProfilesFile    = "profiles.jsonl" // optional; read by the edge's embedded profile store, not the builder
)

// Campaign is one line of campaigns.jsonl.
type Campaign struct {
	ID                string        `json:"id"`
	Advertiser        string        `json:"advertiser"`
	Category          string        `json:"category"`
	BidType           string        `json:"bid_type"`            // cpm | cpc | cpi
	BidMicros         int64         `json:"bid_micros"`          // price per unit of BidType, micros of the account currency
	DailyBudgetMicros int64         `json:"daily_budget_micros"` // optional; absent = no daily limit
	Start             string        `json:"start"`               // RFC 3339
	End               string        `json:"end"`                 // RFC 3339, after Start
	Targeting         Targeting     `json:"targeting"`
	FrequencyCap      *FrequencyCap `json:"frequency_cap,omitempty"` // absent: no cap
	PromotedApp       string        `json:"promoted_app,omitempty"`  // app id; users who have it installed are skipped
	CreativeIDs       []string      `json:"creative_ids"`
	// App bundles (publisher app ids) the campaign may serve in (empty =
	// any) and never serves in; matched against the request's app.
	AllowedBundles []string `json:"allowed_bundles,omitempty"`
	BlockedBundles []string `json:"blocked_bundles,omitempty"`
	// Budget pacing (issue 11, docs/PACING.md); all optional.
	LifetimeBudgetMicros int64  `json:"lifetime_budget_micros,omitempty"` // absent = no lifetime limit
	Pacing               string `json:"pacing,omitempty"`                 // even (default) | asap
	BillingEvent         string `json:"billing_event,omitempty"`          // impression (default) | click (cpc campaigns)
	TimeZone             string `json:"time_zone,omitempty"`              // IANA zone of the budget day; absent = UTC
}

// Targeting says who a campaign may be shown to.
type Targeting struct {
	Countries   []string   `json:"countries"`              // ISO 3166-1 alpha-2, at least one
	OS          []OSTarget `json:"os"`                     // at least one
	DeviceTypes []string   `json:"device_types,omitempty"` // phone | tablet; empty = all
	Segments    []string   `json:"segments,omitempty"`     // any-of; empty = everyone
}

// OSTarget is one targeted operating system with its minimum version.
type OSTarget struct {
	Name       string `json:"name"`                  // android | ios
	MinVersion string `json:"min_version,omitempty"` // "major[.minor[.patch]]"; empty = any
}

// FrequencyCap limits impressions per device per period.
type FrequencyCap struct {
	Count         uint32 `json:"count"`          // >= 1
	PeriodSeconds uint32 `json:"period_seconds"` // >= 60
}

// Creative is one line of creatives.jsonl.
type Creative struct {
	ID          string `json:"id"`
	Format      string `json:"format"`                 // banner | video | native
	Width       uint16 `json:"width"`                  // pixels; 0 x 0 = full screen (a banner then serves interstitials only)
	Height      uint16 `json:"height"`                 // pixels; given with Width (both 0 or both > 0)
	AssetURL    string `json:"asset_url"`              // https URL
	ClickURL    string `json:"click_url"`              // https URL
	ADomain     string `json:"adomain,omitempty"`      // the advertiser's domain, for the exchange's and publisher's checks
	IABCategory string `json:"iab_category,omitempty"` // IAB content category (taxonomy 1.0: IAB1 .. IAB26-n)
	Video       *Video `json:"video,omitempty"`        // format video only, required there
}

// Video is a video creative's playable part.
type Video struct {
	DurationSeconds uint16      `json:"duration_seconds"` // 1 to MaxVideoSeconds
	MediaFiles      []MediaFile `json:"media_files"`      // 1 to MaxMediaFiles renditions

	present uint32 // the members the line gave (for validation)
}

// MediaFile is one rendition of a video (a VAST MediaFile).
type MediaFile struct {
	URL         string `json:"url"`                    // https URL
	MIME        string `json:"mime"`                   // video/mp4, video/webm, application/x-mpegURL ...
	Width       uint16 `json:"width"`                  // pixels, > 0
	Height      uint16 `json:"height"`                 // pixels, > 0
	BitrateKbps uint32 `json:"bitrate_kbps,omitempty"` // optional, up to MaxBitrateKbps
	Delivery    string `json:"delivery,omitempty"`     // progressive (default) | streaming

	present uint32 // the members the line gave (for validation)
}

// Placement is one line of placements.jsonl.
type Placement struct {
	ID                 string   `json:"id"`
	App                string   `json:"app"`
	Formats            []string `json:"formats"`                // creative formats the slot shows, at least one
	Interstitial       bool     `json:"interstitial,omitempty"` // a full-screen slot
	Rewarded           bool     `json:"rewarded,omitempty"`     // the user is rewarded for watching
	FloorMicros        int64    `json:"floor_micros"`           // minimum eCPM, micros; optional, 0 = no floor
	BlockedAdvertisers []string `json:"blocked_advertisers,omitempty"`
	BlockedCategories  []string `json:"blocked_categories,omitempty"`
}

// Prediction is one line of predictions.jsonl: the model's rates for a
// campaign in one country and OS. Sparse: a missing row means DefaultCTR and
// DefaultInstallRate.
type Prediction struct {
	CampaignID  string  `json:"campaign_id"`
	Country     string  `json:"country"`
	OS          string  `json:"os"`
	CTR         float64 `json:"ctr"`          // clicks per impression, [0,1]
	InstallRate float64 `json:"install_rate"` // installs per impression, [0,1]
}

// Defaults used where predictions.jsonl has no row for a campaign, country
// and OS. Deliberately pessimistic (well below typical mobile rates) so an
// unmodelled campaign does not outrank modelled ones on a guess.
const (
	DefaultCTR         = 0.002
	DefaultInstallRate = 0.0002
)

// Experiments is experiments.json: the A/B experiment set shipped inside the
// snapshot so every edge switches together. It is abtest's Set (one
// definition: the edge reads what the builder checked).
type Experiments = abtest.Set

// ExperimentTest is one A/B test of experiments.json (abtest.Test).
type ExperimentTest = abtest.Test

// Limits the validator enforces.
const (
	MaxTests        = abtest.MaxTests // the experiment-set rules are abtest's (Set.Check)
	TotalShareBP    = abtest.Slots
	MaxIDLen        = 128
	MaxURLLen       = 2048
	MaxBidMicros    = 1_000_000_000 // 1000 currency units per action: nothing sane bids more
	MaxFloorMicros  = 200_000_000   // a 200-unit CPM floor: anything above blocks every sane bid
	MaxBudgetMicros = 1_000_000_000_000_000
	MaxLineBytes    = 1 << 20 // a longer line is refused, not buffered
	MaxVideoSeconds = 3600    // a video creative's duration
	MaxMediaFiles   = 16      // renditions per video creative
	MaxBitrateKbps  = 100_000 // 100 Mbit/s: above any mobile rendition
	MaxBundles      = 1000    // entries per campaign bundle list
	MaxProblems     = 100     // reported in full; the rest are counted
)
