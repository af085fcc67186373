//go:build cluster

package cluster_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/natstest"
	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/scenario"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// The sandbox gateway beside the Twilio one, and alice's contact there,
// who echoes what she sends.
const (
	sandboxDomain = "sandbox.localhost"
	echoContact   = "+15551230002"
	echoJID       = echoContact + "@" + sandboxDomain
)

// world is one scenario's deployment: the NATS cluster, Prosody behind the
// component tap, the fake Twilio, the xmppgw processes by name, and alice.
type world struct {
	t     *testing.T
	dir   string
	nats  *natstest.Cluster
	srv   *xmpptest.Server
	tap   *proctest.Tap
	tw    *twiliotest.Server
	alice *xmpptest.Client

	ingressAddr string // fixed before any process starts: every config names it
	procs       []*gw  // in start order
	byName      map[string]*gw
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), byName: map[string]*gw{}}
	w.nats = natstest.StartCluster(t, suite.NATSBinary, 3)
	w.srv = xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{scenario.SMSDomain: "secret", sandboxDomain: "secret"},
		Users:      map[string]string{"alice": "password"},
	})
	w.tap = proctest.StartTap(t, w.srv.ComponentAddr())
	w.tw = twiliotest.Start(t, scenario.AccountSID, scenario.AuthToken)
	w.ingressAddr = proctest.FreeAddr(t)
	w.alice = xmpptest.Login(t, w.srv, "alice", "password")
	return w
}

// gw is one xmppgw process in its role.
type gw struct {
	*proctest.Proc
	name, role string
	httpAddr   string
	url        string
}

// start runs an xmppgw process with role and waits until /readyz answers
// 200 (a standby component answers 200 "standby").
func (w *world) start(name, role string) *gw {
	w.t.Helper()
	httpAddr := proctest.FreeAddr(w.t)
	if role == "ingress" {
		httpAddr = w.ingressAddr
	}
	dir := filepath.Join(w.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	file := w.config(role, httpAddr).Write(w.t, dir)
	g := &gw{
		Proc:     proctest.NewProc(w.t, "xmppgw "+name, filepath.Join(dir, "xmppgw.log"), suite.Binary, "run", "-c", file, "--role", role),
		name:     name,
		role:     role,
		httpAddr: httpAddr,
		url:      "http://" + httpAddr,
	}
	if err := g.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.procs = append(w.procs, g)
	w.byName[name] = g
	if _, _, err := g.waitReady(60*time.Second, ""); err != nil {
		w.t.Fatal(err)
	}
	return g
}

// config is one file for every role: the processes of a deployment share
// it; only http.listen differs (http.public_url is the ingress').
func (w *world) config(role, httpAddr string) scenario.Config {
	return scenario.Config{
		Role:          role,
		XMPPServer:    w.tap.Addr(),
		BusURL:        w.nats.URL(),
		BusReplicas:   3,
		Listen:        httpAddr,
		PublicURL:     "http://" + w.ingressAddr,
		TwilioAPI:     w.tw.URL,
		SandboxDomain: sandboxDomain,
	}
}

func (w *world) webhookURL() string { return "http://" + w.ingressAddr + scenario.WebhookPath }

func (g *gw) get(path string) (int, string, error) { return scenario.Get(g.url + path) }

// waitReady polls /readyz until 200 with want in the body ("" for any),
// the process exits or timeout passes; it returns the time it took and the
// last body.
func (g *gw) waitReady(timeout time.Duration, want string) (time.Duration, string, error) {
	began := time.Now()
	var code int
	var body string
	var err error
	ok := proctest.Poll(timeout, 10*time.Millisecond, func() bool {
		if !g.Running() {
			return true
		}
		code, body, err = g.get("/readyz")
		return err == nil && code == http.StatusOK && strings.Contains(body, want)
	})
	if !g.Running() {
		return 0, body, fmt.Errorf("xmppgw %s exited:\n%s", g.name, g.LogTail(40))
	}
	if !ok {
		return 0, body, fmt.Errorf("xmppgw %s /readyz not 200 %q within %v: %d %q %v\n%s", g.name, want, timeout, code, body, err, g.LogTail(40))
	}
	return time.Since(began), body, nil
}

// metric sums the samples of a metric whose labels contain every one of
// labels (`direction="out"`…); ok is false when the process did not answer.
func (g *gw) metric(name string, labels ...string) (float64, bool) {
	code, body, err := g.get("/metrics")
	if err != nil || code != http.StatusOK {
		return 0, false
	}
	sum, _, ok := scenario.SumMetric(body, name, labels...)
	return sum, ok
}

// pending is what the bus still holds, as the processes that consume it
// report (xmppgw_bus_pending_messages): known is false when no running
// process reported it.
func (w *world) pending() (n float64, known bool) {
	for _, g := range w.procs {
		if !g.Running() || g.role == "ingress" {
			continue
		}
		if v, ok := g.metric("xmppgw_bus_pending_messages"); ok {
			n += v
			known = true
		}
	}
	return n, known
}

// crashed fails the test for every process that exited by itself.
func (w *world) checkCrashes() {
	for _, g := range w.procs {
		if crashed, err := g.Crashed(); crashed {
			w.t.Errorf("xmppgw %s exited by itself (%v):\n%s", g.name, err, g.LogTail(40))
		}
	}
}

// warnings shows each process' warnings and errors, repeats folded.
func (w *world) warnings() string {
	var b strings.Builder
	for _, g := range w.procs {
		lines := g.LogLines(func(l string) bool {
			return strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "===")
		})
		fmt.Fprintf(&b, "--- %s (%s)\n%s", g.name, g.role, proctest.FoldLog(lines, 25))
	}
	return b.String()
}
