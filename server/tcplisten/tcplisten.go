// Package tcplisten opens the serving port's TCP listener with an explicit
// accept backlog.
//
// Go's net.Listen always passes the kernel's net.core.somaxconn as the
// backlog, and net.ListenConfig.Control runs before listen(2), too early to
// choose it. Linux lets listen(2) be called again on a listening socket to
// change the backlog, so Listen opens the socket the ordinary way (keeping
// SO_REUSEADDR and the runtime poller) and then re-listens with the backlog
// asked for. The kernel still caps it at net.core.somaxconn, and SYNs
// waiting for the handshake at net.ipv4.tcp_max_syn_backlog (ops/sysctl.md).
package tcplisten

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Listen listens on TCP address addr with an accept queue of backlog
// connections (0 = the Go default, somaxconn).
func Listen(ctx context.Context, addr string, backlog int) (net.Listener, error) {
	if backlog < 0 {
		return nil, errors.New("tcplisten: negative backlog")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil || backlog == 0 {
		return ln, err
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("tcplisten: %T is not a TCP listener", ln)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		ln.Close()
		return nil, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = SetBacklog(fd, backlog) }); err != nil {
		ln.Close()
		return nil, err
	}
	if lerr != nil {
		ln.Close()
		return nil, fmt.Errorf("tcplisten: listen(backlog %d): %w", backlog, lerr)
	}
	return ln, nil
}
