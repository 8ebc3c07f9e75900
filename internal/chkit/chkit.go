// Package chkit starts a real ClickHouse server (Debian's clickhouse-server)
// for tests: its own config, data directory and free loopback ports,
// stopped in t.Cleanup. Outside CI a missing server skips the test with the
// reason; under CI=true it fails it (.ci/run installs the package).
package chkit

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian installs the server; CLICKHOUSE_SERVER overrides.
var Binary = "/usr/sbin/clickhouse-server"

// Server is one running clickhouse-server.
type Server struct {
	dir       string
	http, tcp int
	cmd       *exec.Cmd
	exited    chan struct{}
}

func binary() (string, error) {
	if b := os.Getenv("CLICKHOUSE_SERVER"); b != "" {
		return b, nil
	}
	if _, err := os.Stat(Binary); err != nil {
		if p, lerr := exec.LookPath("clickhouse-server"); lerr == nil {
			return p, nil
		}
		return "", fmt.Errorf("clickhouse-server not installed (%s: %v; Debian package clickhouse-server)", Binary, err)
	}
	return Binary, nil
}

// Available reports whether a server can be started here, and why not.
func Available() error {
	_, err := binary()
	return err
}

// Start runs a server for t, or skips (fails under CI=true) when there is
// none.
func Start(t testing.TB) *Server {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	s, err := StartServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// StartServer starts a server with its data under dir (for drills that
// are not tests).
func StartServer(dir string) (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	if s.http, err = freePort(); err != nil {
		return nil, err
	}
	if s.tcp, err = freePort(); err != nil {
		return nil, err
	}
	for _, d := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(s.config()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return nil, err
	}
	if err := s.run(bin); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) run(bin string) error {
	out, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("clickhouse-server: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for {
		res, err := c.Get(s.URL() + "ping")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(filepath.Join(s.dir, "log", "err.log"))
			return fmt.Errorf("clickhouse-server exited at start: %s", tail(b))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return errors.New("clickhouse-server did not answer /ping in 60s")
		}
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// URL is the HTTP interface, "http://127.0.0.1:PORT/".
func (s *Server) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.http) + "/" }

// Dir is the server's directory (config, data, logs).
func (s *Server) Dir() string { return s.dir }

// Stop terminates the server (SIGTERM, SIGKILL after 20 s) and waits.
func (s *Server) Stop() error {
	if !s.running() {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	return nil
}

// Kill stops the server at once (SIGKILL): an outage or a crash. A
// graceful Stop waits for running queries, which under load takes seconds.
func (s *Server) Kill() error {
	if !s.running() {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	return nil
}

// running reports whether the server was started and has not exited.
func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Restart starts the stopped server again on the same ports and data.
func (s *Server) Restart() error {
	bin, err := binary()
	if err != nil {
		return err
	}
	_ = s.Stop()
	return s.run(bin)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) config() string {
	return `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>` + s.dir + `/log/server.log</log><errorlog>` + s.dir + `/log/err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>` + strconv.Itoa(s.http) + `</http_port>
  <tcp_port>` + strconv.Itoa(s.tcp) + `</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>50</max_concurrent_queries>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mark_cache_size>67108864</mark_cache_size>
  <path>` + s.dir + `/data/</path>
  <tmp_path>` + s.dir + `/tmp/</tmp_path>
  <user_files_path>` + s.dir + `/user_files/</user_files_path>
  <format_schema_path>` + s.dir + `/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
`
}

const usersXML = `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
