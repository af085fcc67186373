package e2e_test

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// binary is the xmppgw executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xmppgw-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "xmppgw")
	// Tests build with -race: the gateway process is checked for data races
	// too, and a race report makes it exit non-zero, which the tests notice.
	// Benchmarks build without it so that their numbers mean something.
	flag.Parse()
	args := []string{"build", "-race", "-tags", proctest.BuildTags, "-o", binary, "github.com/xmppgw/xmppgw/cmd/xmppgw"}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		args = append(args[:1], args[2:]...)
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building xmppgw:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gw is a running xmppgw process.
type gw struct {
	t       testing.TB
	cmd     *exec.Cmd
	log     *proctest.SyncBuffer
	httpURL string
	exited  chan struct{}
	exitErr error
}

// startGateway writes config to a file and runs `xmppgw run -c FILE`.
// The config gets an http.listen on a free port; %HTTP% in it is replaced by
// that address.
func startGateway(t testing.TB, config string, env ...string) *gw {
	t.Helper()
	return startGatewayIn(t, t.TempDir(), proctest.FreeAddr(t), config, env...)
}

// startGatewayIn runs the gateway with its data (%DATA%) in dir and HTTP on
// httpAddr, so a second process can take over the first one's state.
func startGatewayIn(t testing.TB, dir, httpAddr, config string, env ...string) *gw {
	t.Helper()
	config = strings.ReplaceAll(config, "%HTTP%", httpAddr)
	config = strings.ReplaceAll(config, "%DATA%", filepath.Join(dir, "data"))
	file := filepath.Join(dir, "xmppgw.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, log: &proctest.SyncBuffer{}, httpURL: "http://" + httpAddr, exited: make(chan struct{})}
	g.cmd = exec.Command(binary, "run", "-c", file)
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.Stdout = g.log
	g.cmd.Stderr = g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.exitErr = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("xmppgw log:\n%s", g.log.String())
		}
	})
	return g
}

// stop sends SIGTERM and waits; it returns how long the shutdown took.
func (g *gw) stop() time.Duration {
	start := time.Now()
	select {
	case <-g.exited:
		return 0
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
		g.t.Errorf("xmppgw did not stop within 15 s of SIGTERM")
	}
	return time.Since(start)
}

func (g *gw) running() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// get fetches an HTTP path of the gateway.
func (g *gw) get(path string) (int, string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(g.httpURL + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitHTTP polls path until it answers status (and, if non-empty, a body
// containing want) or the deadline passes.
func (g *gw) waitHTTP(path string, status int, want string, timeout time.Duration) string {
	g.t.Helper()
	var lastCode int
	var lastBody string
	var lastErr error
	ok := poll(timeout, func() bool {
		if !g.running() {
			return true
		}
		lastCode, lastBody, lastErr = g.get(path)
		return lastErr == nil && lastCode == status && strings.Contains(lastBody, want)
	})
	if !g.running() {
		g.t.Fatalf("xmppgw exited (%v) while waiting for %s %d", g.exitErr, path, status)
	}
	if !ok {
		g.t.Fatalf("%s: want %d containing %q within %v; last: %d %q err=%v", path, status, want, timeout, lastCode, lastBody, lastErr)
	}
	return lastBody
}

// waitLog polls the process output for s.
func (g *gw) waitLog(s string, timeout time.Duration) {
	g.t.Helper()
	if !poll(timeout, func() bool { return strings.Contains(g.log.String(), s) }) {
		g.t.Fatalf("log line containing %q did not appear within %v", s, timeout)
	}
}

// poll calls cond every 20 ms until it is true or timeout passes.
func poll(timeout time.Duration, cond func() bool) bool {
	return proctest.Poll(timeout, 20*time.Millisecond, cond)
}

// sandboxConfig is the contract config, pointed at server.
func sandboxConfig(componentAddr, domain, secret string) string {
	return fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %%DATA%%
http:
  listen: %%HTTP%%
  public_url: http://%%HTTP%%
log:
  level: info
gateways:
  sandbox:
    domain: %s
    secret: %s
    adapter: sandbox
`, componentAddr, domain, secret)
}
