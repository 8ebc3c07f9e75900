package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/fetch"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/snapshot/distrib"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

// distConfig is the snapshot distribution part of the edge's flags.
type distConfig struct {
	manifest, channel, pubkey, peerIP, uploadRate string
	peerPort, keep                                int
	manifestPoll, stallTimeout                    time.Duration
}

func addDistFlags(s *cliflag.Set, d *distConfig) {
	g := s.Group("Distribution (BitTorrent from adbuilder serve)")
	g.String(&d.manifest, "manifest", "", "builder manifest URL (http://builder:7070/v1/manifest): fetch snapshots over BitTorrent; empty = only watch --snapshot-dir")
	g.String(&d.channel, "channel", "production", "manifest channel to follow: production | staging", cliflag.OneOf("production", "staging"))
	g.String(&d.pubkey, "pubkey", "", "ed25519 public key file ('adtool keygen') that manifests must be signed with (required with --manifest)")
	g.String(&d.peerIP, "peer-ip", "", "BitTorrent listen and dial address (default: the --listen host when it is an IP)")
	g.Int(&d.peerPort, "peer-port", 0, "BitTorrent listen port (0 = any free port)", port)
	g.String(&d.uploadRate, "upload-rate", "0", "cap on BitTorrent upload to other edges, bytes/s (k/M/G, Ki/Mi/Gi); 0 = unlimited", distrib.RateFlag)
	g.Int(&d.keep, "keep", 3, "snapshots kept in --snapshot-dir for rollback (the one in use is never removed)", atLeastOne)
	g.Duration(&d.manifestPoll, "manifest-poll", 5*time.Second, "mean manifest poll interval (jittered ±25%)", positive)
	g.Duration(&d.stallTimeout, "stall-timeout", 10*time.Second, "no BitTorrent progress for this long adds the builder's web seed", positive)
	s.After(func() error {
		if d.manifest != "" && d.pubkey == "" {
			return errors.New("--manifest needs --pubkey")
		}
		return nil
	})
}

// startDistribution starts the fetcher when --manifest is set; stop closes
// it (partial downloads stay for a resume).
func startDistribution(ctx context.Context, cfg *config, src *snapsource.Source, m *edge.Metrics, hc *health.Config) (stop func(), err error) {
	d := &cfg.dist
	if d.manifest == "" {
		return func() {}, nil
	}
	pub, err := manifestsig.LoadPublicKey(d.pubkey)
	if err != nil {
		return nil, fmt.Errorf("--pubkey: %w", err)
	}
	up, err := distrib.ParseRate(d.uploadRate)
	if err != nil {
		return nil, fmt.Errorf("--upload-rate: %w", err)
	}
	f, err := fetch.New(fetch.Options{
		ManifestURL: d.manifest, Channel: d.channel, PubKey: pub, SnapshotDir: cfg.snapshotDir,
		Snapshots: fetch.FromSource(src), Keep: d.keep, Poll: d.manifestPoll, StallTimeout: d.stallTimeout,
		BindIP: peerIP(d.peerIP, cfg.listen), PeerPort: d.peerPort, UploadRate: up,
		Log: func(event string, kv ...any) { log.Println(append([]any{"distribution:", event}, kv...)...) },
	})
	if err != nil {
		return nil, err
	}
	m.Registry.MustRegister(f.Collector())
	hc.Extras = append(hc.Extras, f.AppendHealthJSON)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.Run(fctx); close(done) }()
	log.Printf("distribution: channel %s from %s, peer %s", d.channel, d.manifest, f.PeerAddr())
	return func() { cancel(); <-done; _ = f.Close() }, nil
}

// pinFor is the version snapsource should start on: the one the channel
// named last, when distribution is on.
func pinFor(cfg *config) string {
	if cfg.dist.manifest == "" {
		return ""
	}
	return fetch.PinnedVersion(cfg.snapshotDir)
}

func peerIP(flagIP, listen string) string {
	if flagIP != "" {
		return flagIP
	}
	host := listen
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == ':' {
			host = host[:i]
			break
		}
	}
	if host == "" || host == "0.0.0.0" {
		return ""
	}
	for _, c := range host {
		if (c < '0' || c > '9') && c != '.' {
			return "" // a name or IPv6: leave dials unbound
		}
	}
	return host
}
