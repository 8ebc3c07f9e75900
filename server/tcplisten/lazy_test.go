package tcplisten

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// lazyPair returns the server side (through LazyDeadlines) and the client
// side of one loopback connection.
func lazyPair(t *testing.T) (*lazyConn, net.Conn) {
	t.Helper()
	ln, err := Listen(context.Background(), "127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	lln := LazyDeadlines(ln)
	t.Cleanup(func() { lln.Close() })
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	c, err := lln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lc, ok := c.(*lazyConn)
	if !ok {
		t.Fatalf("Accept returned %T", c)
	}
	// fasthttp sets keep-alive through this interface: it must stay visible.
	if _, ok := c.(interface{ SetKeepAlive(bool) error }); !ok {
		t.Fatal("lazy conn hides SetKeepAlive")
	}
	return lc, cli
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// waitFor polls the connection's state until cond holds. The deadlines
// under test are 20 ms; waitLimit is far past what a loaded machine
// takes to fire and re-arm one, so only a broken re-arm waits that long,
// and then fails instead of hanging until the test binary's timeout. The
// goroutine doing the I/O reports on ended when it gave up early (its
// error would otherwise leave cond false forever).
func waitFor(t *testing.T, what string, cond func() bool, ended <-chan error) {
	t.Helper()
	const waitLimit = 20 * time.Second
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		select {
		case err := <-ended:
			t.Fatalf("waiting for %s: the I/O ended first: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// TestLazyReadDeadlineLater: a deadline moved later is not armed, the
// earlier armed one fires and is re-armed, and the read times out when the
// later deadline passes, not before.
func TestLazyReadDeadlineLater(t *testing.T) {
	c, _ := lazyPair(t)
	start := time.Now()
	c.SetReadDeadline(start.Add(30 * time.Millisecond))
	later := start.Add(300 * time.Millisecond)
	c.SetReadDeadline(later)
	if got := c.readArmed.Load(); got != start.Add(30*time.Millisecond).UnixNano() {
		t.Fatalf("a later deadline was armed at once (armed %d)", got)
	}
	_, err := c.Read(make([]byte, 1))
	if !isTimeout(err) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	if now := time.Now(); now.Before(later) {
		t.Fatalf("timed out %v before the deadline asked for", later.Sub(now))
	}
}

// TestLazyReadDeadlineEarlier: a deadline moved earlier is armed at once.
func TestLazyReadDeadlineEarlier(t *testing.T) {
	c, _ := lazyPair(t)
	start := time.Now()
	c.SetReadDeadline(start.Add(time.Minute))
	c.SetReadDeadline(start.Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	if !isTimeout(err) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("timed out after %v: the earlier deadline was not armed", el)
	}
}

// TestLazyReadNoDeadline: clearing the deadline after one was armed lets a
// read wait past the armed one and return the data.
func TestLazyReadNoDeadline(t *testing.T) {
	c, cli := lazyPair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	c.SetReadDeadline(time.Time{})
	got := make(chan error, 1)
	go func() {
		b := make([]byte, 5)
		_, err := io.ReadFull(c, b)
		if err == nil && string(b) != "hello" {
			err = errors.New("read " + string(b))
		}
		got <- err
	}()
	// The armed deadline fires and is re-armed to none: then send.
	waitFor(t, "the fired read deadline re-armed to none", func() bool { return c.readArmed.Load() == 0 }, got)
	if _, err := cli.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("read after the cleared deadline: %v", err)
	}
}

// TestLazyWriteResumes: a write blocked on a full socket past an early
// armed deadline goes on (the deadline asked for is later) and delivers
// every byte once the peer reads; a real write deadline still fires.
func TestLazyWriteResumes(t *testing.T) {
	c, cli := lazyPair(t)
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	c.SetWriteDeadline(time.Now().Add(time.Minute))
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: far over the socket buffers
	done := make(chan error, 1)
	var n int
	go func() {
		var err error
		n, err = c.Write(data)
		done <- err
	}()
	waitFor(t, "the early write deadline fired and re-armed", func() bool { return c.writeArmed.Load() == c.writeWant.Load() }, done)
	got, err := io.ReadAll(io.LimitReader(cli, int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ after the resumed write")
	}

	// Nobody reads now: the write times out at its deadline. Reading 16
	// MiB fast grew the peer's receive buffer (Linux autotunes it up to
	// net.ipv4.tcp_rmem's max, 32 MiB here), so one more 16 MiB may fit
	// in the buffers and return nil: keep writing until they are full.
	start := time.Now()
	c.SetWriteDeadline(start.Add(100 * time.Millisecond))
	err = nil
	for written := 0; err == nil && written < 1<<30; written += len(data) {
		_, err = c.Write(data)
	}
	if !isTimeout(err) {
		t.Fatalf("Write to a peer that does not read: %v, want a timeout", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Fatal("write timed out early")
	}
}
