package fetch

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/adedge/adedge/snapshot/distrib"
)

// Collector exports the fetcher's metrics on the edge's admin port:
// adedge_distribution_bytes_total{direction,via} (BitTorrent vs web seed),
// bad pieces, manifest refusals, download failures and write errors,
// progress, and the last verify and swap times.
func (f *Fetcher) Collector() prometheus.Collector {
	return &collector{f: f, bytes: distrib.NewCollector("adedge", f.cl.Totals, nil)}
}

type collector struct {
	f     *Fetcher
	bytes prometheus.Collector
}

var (
	descRefused  = prometheus.NewDesc("adedge_distribution_manifests_refused_total", "Manifests refused: bad signature, malformed, wrong channel, or replayed.", nil, nil)
	descFailures = prometheus.NewDesc("adedge_distribution_failures_total", "Download attempts that failed (torrent, xxhash64 mismatch, swap).", nil, nil)
	descWriteErr = prometheus.NewDesc("adedge_distribution_write_errors_total", "Piece writes that failed (disk full); the download pauses and retries.", nil, nil)
	descDone     = prometheus.NewDesc("adedge_distribution_installed_total", "Snapshots downloaded, verified and swapped in.", nil, nil)
	descProgress = prometheus.NewDesc("adedge_distribution_download_bytes", "Bytes of the current download verified so far, and its size.", []string{"of"}, nil)
	descState    = prometheus.NewDesc("adedge_distribution_state", "1 for the fetcher's current state.", []string{"state"}, nil)
	descVerify   = prometheus.NewDesc("adedge_distribution_last_verify_seconds", "xxhash64 check of the last downloaded file.", nil, nil)
	descSwap     = prometheus.NewDesc("adedge_distribution_last_swap_seconds", "Open, section verify and swap of the last downloaded file.", nil, nil)
	descPeers    = prometheus.NewDesc("adedge_distribution_peers", "BitTorrent peers connected for the current download.", nil, nil)
	allStates    = []State{Idle, Waiting, Downloading, Verifying, Failed}
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.bytes.Describe(ch)
	for _, d := range []*prometheus.Desc{descRefused, descFailures, descWriteErr, descDone, descProgress, descState, descVerify, descSwap, descPeers} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.bytes.Collect(ch)
	f := c.f
	st := f.Status()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descRefused, f.refused.Load())
	counter(descFailures, f.failures.Load())
	counter(descWriteErr, f.writeErr.Load())
	counter(descDone, f.done.Load())
	ch <- prometheus.MustNewConstMetric(descProgress, prometheus.GaugeValue, float64(st.BytesDone), "done")
	ch <- prometheus.MustNewConstMetric(descProgress, prometheus.GaugeValue, float64(st.BytesTotal), "total")
	for _, s := range allStates {
		v := 0.0
		if s == st.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, string(s))
	}
	ch <- prometheus.MustNewConstMetric(descVerify, prometheus.GaugeValue, st.VerifySeconds)
	ch <- prometheus.MustNewConstMetric(descSwap, prometheus.GaugeValue, st.SwapSeconds)
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(st.Peers))
}

// AppendHealthJSON appends the "distribution" member of /health:
// ,"distribution":{"state":...,"channel":...,"target":...,"done":N,"total":N,"error":...}
// Called by the /health handler, so it reads cached state only.
func (f *Fetcher) AppendHealthJSON(dst []byte) []byte {
	st := f.Status()
	dst = append(dst, `,"distribution":{"state":"`...)
	dst = append(dst, st.State...)
	dst = append(dst, `","channel":"`...)
	dst = append(dst, st.Channel...)
	dst = append(dst, `","target":"`...)
	dst = append(dst, st.Target...) // versions are [0-9A-Za-z._-]
	dst = append(dst, `","done_bytes":`...)
	dst = strconv.AppendInt(dst, st.BytesDone, 10)
	dst = append(dst, `,"total_bytes":`...)
	dst = strconv.AppendInt(dst, st.BytesTotal, 10)
	dst = append(dst, `,"peers":`...)
	dst = strconv.AppendInt(dst, int64(st.Peers), 10)
	dst = append(dst, `,"webseed":`...)
	dst = strconv.AppendBool(dst, st.WebSeed)
	if st.LastError != "" {
		dst = append(dst, `,"error":`...)
		q, _ := json.Marshal(st.LastError)
		dst = append(dst, q...)
		dst = append(dst, `,"error_at":"`...)
		dst = st.LastErrorAt.UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}
