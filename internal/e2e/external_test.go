package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// The JavaScript adapter of examples/external-echo, run as its own process
// against `adapter: external`.
const (
	extDomain  = "echo.localhost"
	extContact = "+15551234567@" + extDomain
)

// exampleDir is examples/external-echo, from this package's directory
// (where go test runs it).
func exampleDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "external-echo"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// lookTool fails the test when a tool CI installs is missing: skipping
// would let the example rot unnoticed.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required for the external adapter example (Node.js 18+ and npm): "+
			"bash deploy/install-deps.sh nodejs (make test does it): %v", name, err)
	}
	return p
}

// checkNode fails the test unless node is at least the version the
// example's package.json asks for.
func checkNode(t *testing.T) {
	t.Helper()
	node := lookTool(t, "node")
	out, err := exec.Command(node, "-e", `process.stdout.write(process.versions.node)`).Output()
	if err != nil {
		t.Fatalf("node -e: %v", err)
	}
	var major int
	if _, err := fmt.Sscanf(string(out), "%d.", &major); err != nil || major < 18 {
		t.Fatalf("node %s is too old for the external adapter example: it needs Node.js 18 or later", out)
	}
}

var npmCI struct {
	once sync.Once
	err  error
	out  []byte
}

// installExample runs `npm ci` in the example once per test binary, and
// not at all while node_modules is newer than package-lock.json (npm writes
// node_modules/.package-lock.json when it installs).
func installExample(t *testing.T, dir string) {
	t.Helper()
	npm := lookTool(t, "npm")
	npmCI.once.Do(func() {
		lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			npmCI.err = err
			return
		}
		if inst, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
			return
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		npmCI.out, npmCI.err = cmd.CombinedOutput()
	})
	if npmCI.err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, npmCI.err, npmCI.out)
	}
}

// nodeWorker is the example adapter running under node, in its own process
// group so that nothing it starts outlives the test.
type nodeWorker struct {
	cmd     *exec.Cmd
	log     *proctest.SyncBuffer
	exited  chan struct{}
	exitErr error
}

func startNodeWorker(t *testing.T, dir string, env ...string) *nodeWorker {
	t.Helper()
	node := lookTool(t, "node")
	w := &nodeWorker{log: &proctest.SyncBuffer{}, exited: make(chan struct{})}
	w.cmd = exec.Command(node, "index.js")
	w.cmd.Dir = dir
	w.cmd.Env = append(os.Environ(), env...)
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w.exitErr = w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.stop(t)
		if t.Failed() {
			t.Logf("node worker log:\n%s", w.log.String())
		}
	})
	return w
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (w *nodeWorker) stop(t *testing.T) {
	pgid := w.cmd.Process.Pid
	select {
	case <-w.exited:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("node worker did not stop within 10 s of SIGTERM")
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-w.exited
		}
	}
	// Anything left in the group (there should be nothing) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func externalConfig(componentAddr, natsAddr string) string {
	return fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %%DATA%%
  listen: %s
http:
  listen: %%HTTP%%
log:
  level: debug
gateways:
  echo:
    domain: %s
    secret: secret
    adapter: external
    external:
      type: sms
      contact_type: sms
      name: Echo (Node.js)
      receipts: true
      # The example carries reactions; retractions stand for a feature a
      # newer configuration declares before the worker is upgraded.
      features: [reactions, retractions]
`, componentAddr, natsAddr, extDomain)
}

func TestExternalAdapterNode(t *testing.T) {
	t.Parallel()
	dir := exampleDir(t)
	checkNode(t)
	installExample(t, dir)

	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{extDomain: "secret"}})
	natsAddr := proctest.FreeAddr(t)
	g := startGateway(t, externalConfig(srv.ComponentAddr(), natsAddr))

	// The component is up, but nobody consumes the adapter's subject.
	body := g.waitHTTP("/readyz", http.StatusServiceUnavailable, "gateway echo: no external adapter is consuming", wait)
	g.waitMetric(t, `xmppgw_component_connected{gateway="echo"}`, func(v float64) bool { return v == 1 })
	if !strings.Contains(body, "gateways.echo.adapter") {
		t.Errorf("/readyz should name the gateway's adapter: %s", body)
	}
	alice := xmpptest.Login(t, srv, "alice", "password")

	// Sent before any worker runs: it waits on the bus.
	const early = "sent before the worker started"
	alice.SendChat(t, extContact, early)
	g.waitMetric(t, `xmppgw_messages_total{direction="out",gateway="echo",result="queued"}`, func(v float64) bool { return v >= 1 })
	if code, body, _ := g.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with no worker: %d %s", code, body)
	}

	start := time.Now()
	w := startNodeWorker(t, dir, "NATS_URL=nats://"+natsAddr, "GATEWAY=echo")
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	t.Logf("worker attached %v after exec", time.Since(start).Round(time.Millisecond))
	g.waitLog("external adapter attached", wait)

	echoFrom := func(t *testing.T, body string) xmpptest.Stanza {
		t.Helper()
		return alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.Type == "chat" && bare(s.From) == extContact && s.Body == "echo: "+body
		})
	}

	t.Run("queued message answered", func(t *testing.T) {
		echoFrom(t, early)
	})

	t.Run("echo", func(t *testing.T) {
		alice.SendChat(t, extContact, "hello from Go")
		echoFrom(t, "hello from Go")
	})

	t.Run("receipt", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+extContact+`' type='chat' id='ext-rcpt-1'><body>with receipt</body><request xmlns='urn:xmpp:receipts'/></message>`)
		alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && bare(s.From) == extContact &&
				strings.Contains(s.Raw, "urn:xmpp:receipts") && strings.Contains(s.Raw, "received") && strings.Contains(s.Raw, "ext-rcpt-1")
		})
		echoFrom(t, "with receipt")
	})

	t.Run("refused contact", func(t *testing.T) {
		alice.SendRaw(t, `<message to='12345@`+extDomain+`' type='chat' id='ext-bad-1'><body>to nowhere</body></message>`)
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.Type == "error" && s.ID == "ext-bad-1"
		})
		if s.ErrorCondition != "jid-malformed" || s.ErrorType != "modify" {
			t.Errorf("error = %s/%s, want modify/jid-malformed: %s", s.ErrorType, s.ErrorCondition, s.Raw)
		}
		if !strings.Contains(s.ErrorText, "E.164") || bare(s.From) != "12345@"+extDomain {
			t.Errorf("error text %q from %q: want an E.164 hint from the contact", s.ErrorText, s.From)
		}
	})

	t.Run("reactions", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+extContact+`' type='chat' id='ext-m1'><body>react to me</body></message>`)
		echoFrom(t, "react to me")
		alice.SendRaw(t, `<message to='`+extContact+`' type='chat' id='ext-r1'><reactions id='ext-m1' xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction><reaction>🐢</reaction></reactions></message>`)
		got := waitConv(t, alice, extContact, func(m conv) bool { return m.Reactions != nil && m.Reactions.ID == "ext-m1" })
		if !sameSet(got.Reactions.Reactions, []string{"👍", "🐢"}) {
			t.Errorf("the Node adapter reacted %v, want the same set", got.Reactions.Reactions)
		}
		features := discoFeatures(t, alice, extContact)
		if !slices.Contains(features, "urn:xmpp:reactions:0") || slices.Contains(features, "urn:xmpp:message-correct:0") {
			t.Errorf("disco#info of an external contact: %v; want exactly the configured features", features)
		}
	})

	t.Run("a kind the worker does not carry is answered", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+extContact+`' type='chat' id='ext-x1'><retract id='ext-m1' xmlns='urn:xmpp:message-retract:1'/></message>`)
		s := errorFor(t, alice, "ext-x1")
		if s.ErrorCondition != "feature-not-implemented" || !strings.Contains(s.ErrorText, "retraction") {
			t.Errorf("error %s %q, want feature-not-implemented naming the kind", s.ErrorCondition, s.ErrorText)
		}
	})

	t.Run("disco#info from config", func(t *testing.T) {
		alice.SendRaw(t, `<iq to='`+extDomain+`' type='get' id='ext-disco-1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		s := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "ext-disco-1" })
		raw := strings.ReplaceAll(s.Raw, "'", `"`)
		for _, want := range []string{`category="gateway"`, `type="sms"`, `name="Echo (Node.js)"`, `urn:xmpp:receipts`} {
			if !strings.Contains(raw, want) {
				t.Errorf("disco#info lacks %s: %s", want, s.Raw)
			}
		}
	})

	t.Run("worker stops", func(t *testing.T) {
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("node worker did not stop within 10 s of SIGTERM")
		}
		if w.exitErr != nil || !strings.Contains(w.log.String(), "stopped") {
			t.Errorf("node worker exit %v; want 0 after draining", w.exitErr)
		}
		// Its pull requests left with its connection; readiness follows
		// once its last activity is older than the activity window.
		g.waitHTTP("/readyz", http.StatusServiceUnavailable, "no external adapter is consuming", 30*time.Second)
	})

	// Nothing was left behind on the bus.
	if v := g.metric(t, `xmppgw_bus_pending_messages{direction="out",gateway="echo",state="waiting"}`); v > 0 {
		t.Errorf("%v outbound messages still waiting", v)
	}
	if strings.Contains(w.log.String(), "level=ERROR") {
		t.Errorf("node worker logged errors:\n%s", w.log.String())
	}
}
