package distrib

import "github.com/prometheus/client_golang/prometheus"

// NewCollector exports a client's byte counters as
// <prefix>_distribution_bytes_total{direction="up|down",via="torrent|webseed"}
// plus <prefix>_distribution_bad_pieces_total. webseedUp, when not nil, counts
// what this process served as a web seed (the builder).
func NewCollector(prefix string, totals func() Totals, webseedUp func() int64) prometheus.Collector {
	return &collector{
		totals: totals, webseedUp: webseedUp,
		bytes: prometheus.NewDesc(prefix+"_distribution_bytes_total",
			"Snapshot bytes moved, by direction and by path (BitTorrent peers or the HTTP web seed).", []string{"direction", "via"}, nil),
		bad: prometheus.NewDesc(prefix+"_distribution_bad_pieces_total",
			"Pieces that failed their hash check and were fetched again.", nil, nil),
	}
}

type collector struct {
	totals    func() Totals
	webseedUp func() int64
	bytes     *prometheus.Desc
	bad       *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.bytes; ch <- c.bad }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t := c.totals()
	var wsUp int64
	if c.webseedUp != nil {
		wsUp = c.webseedUp()
	}
	for _, r := range []struct {
		dir, via string
		v        int64
	}{{"up", "torrent", t.TorrentUp}, {"down", "torrent", t.TorrentDown}, {"up", "webseed", wsUp}, {"down", "webseed", t.WebSeedDown}} {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(r.v), r.dir, r.via)
	}
	ch <- prometheus.MustNewConstMetric(c.bad, prometheus.CounterValue, float64(t.BadPieces))
}
