package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/adedge/adedge/internal/cliflag"
)

func init() {
	register("drain", "drain an edge through its admin port (as SIGTERM): /health 503, grace, stop", runDrain)
	register("maint", "put an edge in or out of maintenance (agent says maint, /health 503, keeps running)", runMaint)
}

// adminPost POSTs to the edge's admin port and prints the answer.
func adminPost(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Post(url, "", nil)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(os.Stdout, io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, nil
}

func runDrain(args []string) int {
	fs := newFlagSet("drain")
	admin := fs.String("admin", "127.0.0.1:9090", "the edge's admin address")
	wait := fs.Bool("wait", false, "wait until the edge has stopped (its admin port closes)")
	timeout := fs.Duration("timeout", 2*time.Minute, "with --wait, give up after this long")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: adtool drain [--admin ADDR] [--wait] [--timeout D]")
		return 2
	}
	code, err := adminPost("http://" + *admin + "/admin/drain")
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool drain: %v\n", err)
		return 1
	}
	if code != http.StatusAccepted {
		fmt.Fprintf(os.Stderr, "adtool drain: the edge answered %d\n", code)
		return 1
	}
	if !*wait {
		return 0
	}
	start := time.Now()
	for time.Since(start) < *timeout {
		c, err := net.DialTimeout("tcp", *admin, time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "adtool drain: %s stopped after %v\n", *admin, time.Since(start).Round(100*time.Millisecond))
			return 0
		}
		c.Close()
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "adtool drain: %s still up after %v\n", *admin, *timeout)
	return 1
}

func runMaint(args []string) int {
	fs := newFlagSet("maint", "on|off")
	admin := fs.String("admin", "127.0.0.1:9090", "the edge's admin address")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: adtool maint [--admin ADDR] on|off")
		return 2
	}
	var on bool
	switch fs.Arg(0) {
	case "on":
		on = true
	case "off":
	default:
		fmt.Fprintln(os.Stderr, "usage: adtool maint [--admin ADDR] on|off")
		return 2
	}
	code, err := adminPost("http://" + *admin + "/admin/maint?on=" + strconv.FormatBool(on))
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool maint: %v\n", err)
		return 1
	}
	if code != http.StatusOK {
		fmt.Fprintf(os.Stderr, "adtool maint: the edge answered %d\n", code)
		return 1
	}
	return 0
}
