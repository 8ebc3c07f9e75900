package main

import (
	"fmt"
	"os"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/internal/cliflag"
)

func init() {
	register("baseline", "serve a fixed JSON body with fasthttp: the trivial handler benchmarks compare against", runBaseline)
}

func runBaseline(args []string) int {
	fs := newFlagSet("baseline")
	listen := fs.String("listen", "127.0.0.1:8081", "address")
	bodyFile := fs.String("body", "", "file with the response body (default: a 700-byte JSON ad)")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	body := []byte(`{"request_id":"0123456789abcdef","campaign":"cmp-0000001","creative":{"id":"cr-00000001","format":"interstitial","width":320,"height":480,"asset_url":"https://cdn.adedge.example/a/advertiser/cr-00000001_320x480.jpg"},"impression_url":"http://127.0.0.1:8080/v1/imp?t=AbOC0wGiAQAATEsAAAAAAAAAAAAAAAALY21wLTAwMDAxMjALY3ItMDAwMDA2MDAAC2V4cC1kZWZhdWx0B2NvbnRyb2wZMjAyNjExMjJUMDU0ODA0Wi00MTcwNTg0ZHPa-56LP0Upb76VNuH6POM","click_url":"http://127.0.0.1:8080/v1/click?t=AbOC0wGiAQAATEsAAAAAAAAAAAAAAAALY21wLTAwMDAxMjALY3ItMDAwMDA2MDAAC2V4cC1kZWZhdWx0B2NvbnRyb2wZMjAyNjExMjJUMDU0ODA0Wi00MTcwNTg0ZHPa-56LP0Upb76VNuH6POM","price_micros":19276,"ecpm_micros":19276640,"bucket":{"env":"production","experiment":"exp-default","test":"control","variant":"control"},"snapshot":"20261122T054804Z-4170584d"}`)
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "adtool baseline: %v\n", err)
			return 2
		}
		body = b
	}
	s := &fasthttp.Server{Name: "baseline", NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	fmt.Fprintf(os.Stderr, "baseline: serving %d-byte body on %s\n", len(body), *listen)
	if err := s.ListenAndServe(*listen); err != nil {
		fmt.Fprintf(os.Stderr, "adtool baseline: %v\n", err)
		return 1
	}
	return 0
}
