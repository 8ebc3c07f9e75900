//go:build unix

package tcplisten

import "syscall"

// SetBacklog changes listening socket fd's accept queue to backlog: Linux
// lets listen(2) be called again on a listening socket (see the package
// doc). server/evloop uses it on gnet's listener.
func SetBacklog(fd uintptr, backlog int) error { return syscall.Listen(int(fd), backlog) }
