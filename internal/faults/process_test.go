//go:build faults

package faults_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// newProc is a proctest.Proc whose log marks each start as the suite's.
func newProc(t *testing.T, name, logPath string, args ...string) *proctest.Proc {
	p := proctest.NewProc(t, name, logPath, args...)
	p.LogLabel = "faults: "
	return p
}

// gateway is the xmppgw process of one scenario. Restarts keep its config,
// data directory and HTTP port, so webhooks reach the new process.
type gateway struct {
	*proctest.Proc
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
	httpAddr := proctest.FreeAddr(t)
	cfg := gatewayConfig(httpAddr, o)
	file := filepath.Join(dir, "xmppgw.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{
		Proc:     newProc(t, "xmppgw", filepath.Join(dir, "xmppgw.log"), binary, "run", "-c", file),
		httpAddr: httpAddr,
		url:      "http://" + httpAddr,
	}
	if err := g.Start(); err != nil {
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
	ok := proctest.Poll(timeout, 20*time.Millisecond, func() bool {
		if !g.Running() {
			return true
		}
		code, body, err = g.get("/readyz")
		return err == nil && code == http.StatusOK
	})
	if !g.Running() {
		return 0, fmt.Errorf("xmppgw exited while starting:\n%s", g.LogTail(40))
	}
	if !ok {
		return 0, fmt.Errorf("xmppgw /readyz not 200 within %v: %d %q %v\n%s", timeout, code, body, err, g.LogTail(40))
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
	*proctest.Proc
	addr string
}

func startNATS(t *testing.T, dir string) *natsServer {
	t.Helper()
	addr := proctest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	store := filepath.Join(dir, "jetstream")
	ns := &natsServer{
		Proc: newProc(t, "nats-server", filepath.Join(dir, "nats-server.log"),
			natsBinary, "-js", "-sd", store, "-a", host, "-p", port, "-n", "faults-nats"),
		addr: addr,
	}
	ns.startAndWait(t)
	return ns
}

func (ns *natsServer) startAndWait(t *testing.T) time.Duration {
	t.Helper()
	began := time.Now()
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	// Listening comes after JetStream recovered its store.
	if !proctest.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", ns.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil || !ns.Running()
	}) || !ns.Running() {
		t.Fatalf("nats-server did not listen on %s:\n%s", ns.addr, ns.LogTail(30))
	}
	return time.Since(began)
}
