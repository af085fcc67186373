//go:build faults

package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process that can be killed and started again with the
// same command line; its output goes to one log file across restarts.
type proc struct {
	name    string
	args    []string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returned
	exitErr error
	starts  int
	killed  bool // the last exit was asked for (kill or stop)
}

func newProc(t *testing.T, name, logPath string, args ...string) *proc {
	p := &proc{name: name, args: args, logPath: logPath}
	t.Cleanup(func() {
		if d, err := p.stop(15 * time.Second); err != nil {
			t.Errorf("%s: %v (after %v)", name, err, d)
		}
	})
	return p
}

// start runs the command (again). The child dies with the test binary.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.exited) {
		return fmt.Errorf("%s already running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	p.starts++
	fmt.Fprintf(f, "=== faults: start #%d at %s ===\n", p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.killed = cmd, exited, false
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// signal sends sig and waits up to timeout for the exit.
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) (time.Duration, error) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	if cmd == nil || isClosed(exited) {
		p.mu.Unlock()
		return 0, nil
	}
	p.killed = true
	p.mu.Unlock()
	began := time.Now()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return time.Since(began), nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return time.Since(began), fmt.Errorf("did not exit within %v of %v; killed", timeout, sig)
	}
}

func (p *proc) kill() error {
	_, err := p.signal(syscall.SIGKILL, 10*time.Second)
	return err
}

func (p *proc) stop(timeout time.Duration) (time.Duration, error) {
	return p.signal(syscall.SIGTERM, timeout)
}

// crashed reports an exit nobody asked for.
func (p *proc) crashed() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || !isClosed(p.exited) || p.killed {
		return false, nil
	}
	return true, p.exitErr
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.exited)
}

// logTail returns the last n lines of the log.
func (p *proc) logTail(n int) string {
	lines := p.logLines(func(string) bool { return true })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLines returns the log lines for which keep is true.
func (p *proc) logLines(keep func(string) bool) []string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if keep(sc.Text()) {
			out = append(out, sc.Text())
		}
	}
	return out
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// gateway is the xmppgw process of one scenario. Restarts keep its config,
// data directory and HTTP port, so webhooks reach the new process.
type gateway struct {
	*proc
	httpAddr string
	url      string // http://httpAddr, also http.public_url
}

// gatewayOptions shape the configuration.
type gatewayOptions struct {
	componentAddr  string // where the component connects (the tap)
	apiURL         string // fake Twilio
	dataDir        string // bus.data_dir (embedded NATS)
	busURL         string // bus.url (external NATS) instead
	requestTimeout time.Duration
}

func startGateway(t *testing.T, dir string, o gatewayOptions) *gateway {
	t.Helper()
	httpAddr := freeAddr(t)
	cfg := gatewayConfig(httpAddr, o)
	file := filepath.Join(dir, "xmppgw.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{
		proc:     newProc(t, "xmppgw", filepath.Join(dir, "xmppgw.log"), binary, "run", "-c", file),
		httpAddr: httpAddr,
		url:      "http://" + httpAddr,
	}
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	g.waitReady(t, 30*time.Second)
	return g
}

// gatewayConfig is the Twilio gateway of the e2e tests, with alice's static
// number, no per-user quota and an mps that does not throttle the run.
func gatewayConfig(httpAddr string, o gatewayOptions) string {
	bus := "  data_dir: " + o.dataDir
	if o.busURL != "" {
		bus = "  url: " + o.busURL
	}
	timeout := ""
	if o.requestTimeout > 0 {
		timeout = "      request_timeout: " + o.requestTimeout.String() + "\n"
	}
	return fmt.Sprintf(`xmpp:
  server: %s
bus:
%s
http:
  listen: %s
  public_url: http://%s
log:
  level: info
gateways:
  sms:
    domain: %s
    secret: secret
    adapter: twilio
    quota:
      messages: 0
    twilio:
      account_sid: %s
      auth_token: %s
      api_url: %s
      default_region: US
      mps: 10000
%s      numbers:
        "%s": alice@localhost
`, o.componentAddr, bus, httpAddr, httpAddr, smsDomain, accountSID, authToken, o.apiURL, timeout, aliceNum)
}

func (g *gateway) get(path string) (int, string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(g.url + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitReady polls /readyz until 200; it fails the test if the process exits
// or the deadline passes.
func (g *gateway) waitReady(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	d, err := g.ready(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ready polls /readyz until 200, the process exits or timeout passes.
func (g *gateway) ready(timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	var code int
	var body string
	var err error
	ok := poll(timeout, 20*time.Millisecond, func() bool {
		if !g.running() {
			return true
		}
		code, body, err = g.get("/readyz")
		return err == nil && code == http.StatusOK
	})
	if !g.running() {
		return 0, fmt.Errorf("xmppgw exited while starting:\n%s", g.logTail(40))
	}
	if !ok {
		return 0, fmt.Errorf("xmppgw /readyz not 200 within %v: %d %q %v\n%s", timeout, code, body, err, g.logTail(40))
	}
	return time.Since(began), nil
}

// pending sums xmppgw_bus_pending_messages (both directions, waiting and
// unacknowledged). ok is false when the gateway cannot tell (no answer, or
// no samples because the bus does not answer).
func (g *gateway) pending() (n float64, ok bool) {
	code, body, err := g.get("/metrics")
	if err != nil || code != http.StatusOK {
		return 0, false
	}
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, "xmppgw_bus_pending_messages{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, false
		}
		n += v
		ok = true
	}
	return n, ok
}

// natsServer is a stand-alone nats-server with JetStream on a store dir.
type natsServer struct {
	*proc
	addr string
}

func startNATS(t *testing.T, dir string) *natsServer {
	t.Helper()
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	store := filepath.Join(dir, "jetstream")
	ns := &natsServer{
		proc: newProc(t, "nats-server", filepath.Join(dir, "nats-server.log"),
			natsBinary, "-js", "-sd", store, "-a", host, "-p", port, "-n", "faults-nats"),
		addr: addr,
	}
	ns.startAndWait(t)
	return ns
}

func (ns *natsServer) startAndWait(t *testing.T) time.Duration {
	t.Helper()
	began := time.Now()
	if err := ns.start(); err != nil {
		t.Fatal(err)
	}
	// Listening comes after JetStream recovered its store.
	if !poll(30*time.Second, 20*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", ns.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil || !ns.running()
	}) || !ns.running() {
		t.Fatalf("nats-server did not listen on %s:\n%s", ns.addr, ns.logTail(30))
	}
	return time.Since(began)
}

// poll calls cond every interval until it is true or timeout passes.
func poll(timeout, interval time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
