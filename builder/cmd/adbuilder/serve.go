package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/adedge/adedge/builder/publish"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/snapshot/distrib"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

type serveArgs struct {
	input, data, listen, admin, key, publicURL, peerIP, upload, created string
	peerPort, maxPeers, keep                                            int
	poll                                                                time.Duration
	pieceLen                                                            int64
}

// serveFlags are `adbuilder serve`'s flags (ADBUILDER_<FLAG> too).
func serveFlags(a *serveArgs) *cliflag.Set {
	fs := cliflag.New("adbuilder serve", "ADBUILDER_", "adbuilder serve --input DIR --data DIR --key FILE [flags]")
	fs.About("Builds on input change, seeds each snapshot over BitTorrent, runs the tracker and web seed,\nand publishes ed25519-signed channel manifests (docs/DISTRIBUTION.md).")
	in := fs.Group("Input and output")
	in.String(&a.input, "input", "", "inventory directory, rebuilt when it changes")
	in.String(&a.data, "data", "", "builder data directory (snapshots/, torrents/, channels.json)")
	in.String(&a.key, "key", "", "ed25519 private key file from 'adtool keygen'")
	in.Int(&a.keep, "keep", 5, "built snapshots kept on disk (channel versions and the rollback target are always kept)", cliflag.AtLeast(1))
	in.Duration(&a.poll, "poll", 2*time.Second, "how often to check the input directory for changes", cliflag.Above(time.Duration(0)))
	in.String(&a.created, "created", "", "snapshot data time, RFC 3339 (default: the newest input's mtime)", rfc3339)
	fs.Require("input", "data", "key")
	h := fs.Group("HTTP")
	h.String(&a.listen, "listen", "127.0.0.1:7070", "public HTTP: manifests, .torrent files, tracker, web seed", cliflag.HostPort)
	h.String(&a.admin, "admin", "127.0.0.1:7071", "admin HTTP: /metrics, /admin/{status,build,promote,rollback}; keep it on loopback", cliflag.HostPort)
	h.String(&a.publicURL, "public-url", "", "base URL edges reach --listen at (default http://<listen>)")
	bt := fs.Group("BitTorrent")
	bt.String(&a.peerIP, "peer-ip", "", "BitTorrent listen and dial address (default: the --listen host when it is an IP)")
	bt.Int(&a.peerPort, "peer-port", 0, "BitTorrent listen port (0 = any free port)", cliflag.Between(0, 65535))
	bt.String(&a.upload, "upload-rate", "0", "cap on the origin's upload, BitTorrent and web seed together: bytes/s with k/M/G (SI) or Ki/Mi/Gi suffix; 0 = unlimited", distrib.RateFlag)
	bt.Int(&a.maxPeers, "max-peers", 2, "edges the origin uploads to at once (0 = the library default, 50): a few makes edges fetch the rest from each other", cliflag.AtLeast(0))
	bt.Int64(&a.pieceLen, "piece-length", 256<<10, "torrent piece length in bytes (a power of two, 16 KiB..16 MiB)", pieceLength)
	return fs
}

func pieceLength(n int64) string {
	if n < 16<<10 || n > 16<<20 || n&(n-1) != 0 {
		return "a power of two from 16384 to 16777216"
	}
	return ""
}

// serve runs `adbuilder serve` until SIGTERM or SIGINT.
func serve(args []string) int {
	var a serveArgs
	fs := serveFlags(&a)
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	rate, _ := distrib.ParseRate(a.upload) // checked by the flag
	key, err := manifestsig.LoadPrivateKey(a.key)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adbuilder serve: --key: %v\n", err)
		return 2
	}
	opts := publish.Options{Input: a.input, Data: a.data, Key: key, Keep: a.keep, UploadRate: rate,
		PieceLength: a.pieceLen, Poll: a.poll, MaxPeers: a.maxPeers, PeerPort: a.peerPort, BindIP: a.peerIP, PublicURL: a.publicURL}
	if a.created != "" {
		opts.Created, _ = time.Parse(time.RFC3339, a.created) // checked by the flag
	}
	host, _, err := net.SplitHostPort(a.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adbuilder serve: --listen %q: %v\n", a.listen, err)
		return 2
	}
	if opts.PublicURL == "" {
		h := host
		if h == "" || h == "0.0.0.0" {
			h = "127.0.0.1"
		}
		_, port, _ := net.SplitHostPort(a.listen)
		opts.PublicURL = "http://" + net.JoinHostPort(h, port)
	}
	if opts.BindIP == "" && net.ParseIP(host) != nil && host != "0.0.0.0" {
		opts.BindIP = host
	}
	log.SetFlags(log.LUTC | log.Ldate | log.Ltime | log.Lmicroseconds)
	opts.Log = func(event string, kv ...any) { log.Println(append([]any{event}, kv...)...) }
	if err := runServe(opts, a.listen, a.admin); err != nil {
		log.Printf("adbuilder serve: %v", err)
		return 1
	}
	return 0
}

func runServe(opts publish.Options, listen, admin string) error {
	p, err := publish.New(opts)
	if err != nil {
		return err
	}
	defer p.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	aln, err := net.Listen("tcp", admin)
	if err != nil {
		return fmt.Errorf("--admin: %w", err)
	}
	pub := &http.Server{Handler: p.Handler()}
	publish.ServerTimeouts(pub)
	adm := &http.Server{Handler: p.AdminHandler()}
	publish.ServerTimeouts(adm)
	go func() { _ = pub.Serve(ln) }()
	go func() { _ = adm.Serve(aln) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("adbuilder serve: http %s (public %s), admin %s, peer %s, upload cap %s, input %s",
		ln.Addr(), opts.PublicURL, aln.Addr(), p.PeerAddr(), rateString(opts.UploadRate), opts.Input)
	p.Run(ctx)
	log.Printf("adbuilder serve: stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = pub.Shutdown(sctx)
	_ = adm.Shutdown(sctx)
	return nil
}

func rateString(r int64) string {
	if r <= 0 {
		return "none"
	}
	return fmt.Sprintf("%.1f MB/s", float64(r)/1e6)
}
