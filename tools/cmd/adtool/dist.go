package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

func init() {
	register("keygen", "make the ed25519 key pair that signs channel manifests (PREFIX.key, PREFIX.pub)", runKeygen)
	register("promote", "point the production channel at a built VERSION (adbuilder serve's admin port)", runPromote)
	register("rollback", "point production back at the version it served before", runRollback)
	register("manifest", "fetch a channel's manifest, check its signature, print it", runManifest)
}

func runKeygen(args []string) int {
	fs := newFlagSet("keygen")
	out := fs.String("out", "manifest", "path prefix: writes PREFIX.key (private, 0600) and PREFIX.pub")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	pub, priv, err := manifestsig.GenerateKey()
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool keygen:", err)
		return 1
	}
	if err := manifestsig.WriteKeys(*out, pub, priv); err != nil {
		fmt.Fprintln(os.Stderr, "adtool keygen:", err)
		return 1
	}
	fmt.Printf("wrote %s.key (give it to adbuilder serve --key) and %s.pub (adedge --pubkey); key id %s\n", *out, *out, manifestsig.KeyID(pub))
	return 0
}

// builderPost POSTs to the builder's admin port and prints its answer.
func builderPost(builder, path string) int {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post(strings.TrimSuffix(builder, "/")+path, "", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool:", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "adtool: %s: %s", resp.Status, b)
		return 1
	}
	os.Stdout.Write(b)
	return 0
}

func builderFlag(fs *cliflag.Set) *string {
	return fs.String("builder", "http://127.0.0.1:7071", "adbuilder serve's admin URL ($ADTOOL_BUILDER)")
}

func runPromote(args []string) int {
	fs := newFlagSet("promote", "VERSION")
	b := builderFlag(fs)
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: adtool promote [--builder URL] VERSION")
		return 2
	}
	return builderPost(*b, "/admin/promote?version="+url.QueryEscape(fs.Arg(0)))
}

func runRollback(args []string) int {
	fs := newFlagSet("rollback")
	b := builderFlag(fs)
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	return builderPost(*b, "/admin/rollback")
}

func runManifest(args []string) int {
	fs := newFlagSet("manifest")
	u := fs.String("url", "http://127.0.0.1:7070/v1/manifest", "manifest URL")
	ch := fs.String("channel", "production", "staging | production")
	pubFile := fs.String("pubkey", "", "public key file the manifest must be signed with")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if *pubFile == "" {
		fmt.Fprintln(os.Stderr, "adtool manifest: --pubkey is required")
		return 2
	}
	pub, err := manifestsig.LoadPublicKey(*pubFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool manifest:", err)
		return 2
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(*u + "?channel=" + url.QueryEscape(*ch))
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool manifest:", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, manifestsig.MaxBytes+1))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "adtool manifest: %s: %s", resp.Status, b)
		return 1
	}
	p, err := manifestsig.Verify(pub, b, *ch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool manifest: REFUSED:", err)
		return 1
	}
	out, _ := json.MarshalIndent(p, "", "  ")
	fmt.Printf("signature OK (key %s)\n%s\n", manifestsig.KeyID(pub), out)
	return 0
}
