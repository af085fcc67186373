//go:build faults

package faults_test

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/scenario"
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
	componentAddr  string   // where the component connects (the tap)
	provider       provider // the fake SMS provider
	dataDir        string   // bus.data_dir (embedded NATS)
	busURL         string   // bus.url (external NATS) instead
	requestTimeout time.Duration
}

func startGateway(t *testing.T, dir string, o gatewayOptions) *gateway {
	t.Helper()
	httpAddr := proctest.FreeAddr(t)
	file := gatewayConfig(httpAddr, o).Write(t, dir)
	g := &gateway{
		Proc:     newProc(t, "xmppgw", filepath.Join(dir, "xmppgw.log"), suite.Binary, "run", "-c", file),
		httpAddr: httpAddr,
		url:      "http://" + httpAddr,
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	g.waitReady(t, 30*time.Second)
	return g
}

// gatewayConfig is the one process of a scenario in every role: the sms
// gateway alone, its own webhook URL as public_url.
func gatewayConfig(httpAddr string, o gatewayOptions) scenario.Config {
	c := scenario.Config{
		XMPPServer:     o.componentAddr,
		BusURL:         o.busURL,
		BusDataDir:     o.dataDir,
		Listen:         httpAddr,
		PublicURL:      "http://" + httpAddr,
		RequestTimeout: o.requestTimeout,
	}
	o.provider.config(&c)
	return c
}

func (g *gateway) get(path string) (int, string, error) { return scenario.Get(g.url + path) }

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
	n, samples, ok := scenario.SumMetric(body, "xmppgw_bus_pending_messages")
	return n, ok && samples > 0
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
			suite.NATSBinary, "-js", "-sd", store, "-a", host, "-p", port, "-n", "faults-nats"),
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
