package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/adedge/adedge/builder/publish"
	"github.com/adedge/adedge/snapshot/distrib"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

// serve runs `adbuilder serve` until SIGTERM or SIGINT.
func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	input := fs.String("input", "", "inventory directory, rebuilt when it changes")
	data := fs.String("data", "", "builder data directory (snapshots/, torrents/, channels.json)")
	listen := fs.String("listen", "127.0.0.1:7070", "public HTTP: manifests, .torrent files, tracker, web seed")
	admin := fs.String("admin", "127.0.0.1:7071", "admin HTTP: /metrics, /admin/{status,build,promote,rollback}; keep it on loopback")
	keyFile := fs.String("key", "", "ed25519 private key file from 'adtool keygen'")
	publicURL := fs.String("public-url", "", "base URL edges reach --listen at (default http://<listen>)")
	peerIP := fs.String("peer-ip", "", "BitTorrent listen and dial address (default: the --listen host when it is an IP)")
	peerPort := fs.Int("peer-port", 0, "BitTorrent listen port (0 = any free port)")
	upload := fs.String("upload-rate", "0", "cap on the origin's upload, BitTorrent and web seed together: bytes/s with k/M/G (SI) or Ki/Mi/Gi suffix; 0 = unlimited")
	maxPeers := fs.Int("max-peers", 2, "edges the origin uploads to at once (0 = the library default, 50): a few makes edges fetch the rest from each other")
	keep := fs.Int("keep", 5, "built snapshots kept on disk (channel versions and the rollback target are always kept)")
	poll := fs.Duration("poll", 2*time.Second, "how often to check the input directory for changes")
	pieceLen := fs.Int64("piece-length", 256<<10, "torrent piece length in bytes (power of two)")
	created := fs.String("created", "", "snapshot data time, RFC 3339 (default: the newest input's mtime)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *input == "" || *data == "" || *keyFile == "" {
		fmt.Fprintln(os.Stderr, "adbuilder serve: --input, --data and --key are required")
		fs.Usage()
		return 2
	}
	rate, err := distrib.ParseRate(*upload)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adbuilder serve: --upload-rate: %v\n", err)
		return 2
	}
	key, err := manifestsig.LoadPrivateKey(*keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adbuilder serve: --key: %v\n", err)
		return 2
	}
	opts := publish.Options{Input: *input, Data: *data, Key: key, Keep: *keep, UploadRate: rate,
		PieceLength: *pieceLen, Poll: *poll, MaxPeers: *maxPeers, PeerPort: *peerPort, BindIP: *peerIP, PublicURL: *publicURL}
	if *created != "" {
		if opts.Created, err = time.Parse(time.RFC3339, *created); err != nil {
			fmt.Fprintf(os.Stderr, "adbuilder serve: --created %q: want RFC 3339\n", *created)
			return 2
		}
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adbuilder serve: --listen %q: %v\n", *listen, err)
		return 2
	}
	if opts.PublicURL == "" {
		h := host
		if h == "" || h == "0.0.0.0" {
			h = "127.0.0.1"
		}
		_, port, _ := net.SplitHostPort(*listen)
		opts.PublicURL = "http://" + net.JoinHostPort(h, port)
	}
	if opts.BindIP == "" && net.ParseIP(host) != nil && host != "0.0.0.0" {
		opts.BindIP = host
	}
	log.SetFlags(log.LUTC | log.Ldate | log.Ltime | log.Lmicroseconds)
	opts.Log = func(event string, kv ...any) { log.Println(append([]any{event}, kv...)...) }
	if err := runServe(opts, *listen, *admin); err != nil {
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
