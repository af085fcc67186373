package e2e_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// Distinctive secrets: any appearance in output is a leak, not a
// coincidence. twilio-go needs an alphanumeric token.
const (
	leakSecret = "cmpnt-S3cr3t-7f3a9c"
	leakToken  = "7f3a9c5ec2e7b1d4a8f06c3e9d2b1a47"
	// wrongSecret is what a misconfigured gateway offers the server.
	wrongSecret = "wr0ng-S3cr3t-c9a3f7"
)

// secretForms are the ways a secret could show up: as is, and encoded as
// an HTTP client or a careless %x would write it.
func secretForms(secret string) []string {
	return []string{
		secret,
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.RawStdEncoding.EncodeToString([]byte(secret)),
		hex.EncodeToString([]byte(secret)),
	}
}

// leaks lists the forms of the gateway's secrets, including Twilio's basic
// auth header value base64(sid:token).
func leaks() []string {
	basic := accountSID + ":" + leakToken
	out := append(secretForms(leakSecret), secretForms(wrongSecret)...)
	out = append(out, leakToken, base64.StdEncoding.EncodeToString([]byte(leakToken)))
	return append(out,
		base64.StdEncoding.EncodeToString([]byte(basic)),
		base64.RawStdEncoding.EncodeToString([]byte(basic)),
		base64.URLEncoding.EncodeToString([]byte(basic)))
}

// assertNoSecrets fails the test if text (named what) contains a secret.
func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range leaks() {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("%s contains the secret form %q: …%s…", what, s, text[max(0, i-200):min(len(text), i+len(s)+50)])
		}
	}
}

// secretsConfig is twilioConfig at debug level with the distinctive
// secrets; secrets false leaves them out (for the environment to supply).
func secretsConfig(componentAddr, apiURL string, secrets bool) string {
	secret, token := "    secret: "+leakSecret+"\n", "      auth_token: "+leakToken+"\n"
	if !secrets {
		secret, token = "", ""
	}
	return fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %%DATA%%
http:
  listen: %%HTTP%%
  public_url: http://%%HTTP%%
log:
  level: debug
gateways:
  sms:
    domain: sms.localhost
%s    adapter: twilio
    admins: [admin@localhost]
    twilio:
      account_sid: %s
%s      api_url: %s
      default_region: US
      mps: 50
      numbers:
        "%s": alice@localhost
      pool: ["%s"]
`, componentAddr, secret, accountSID, token, apiURL, aliceNum, poolNum)
}

// TestSecretsNeverLogged drives every path that handles a secret (the
// component handshake, Twilio's API with basic auth, webhook signatures,
// media fetched with the account's credentials, a refused handshake) with
// debug logging, then looks for the secrets in everything the gateway says:
// its log, check-config, /metrics and /readyz.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	const locked = "locked.localhost"
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{smsDomain: leakSecret, locked: leakSecret},
		Users:      map[string]string{"alice": "password", "bob": "password"},
	})
	tw := twiliotest.Start(t, accountSID, leakToken)
	dir := t.TempDir()
	g := startGatewayIn(t, dir, proctest.FreeAddr(t), secretsConfig(srv.ComponentAddr(), tw.URL, true))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")
	bob := xmpptest.Login(t, srv, "bob", "password")
	webhook := func(path string) string { return g.httpURL + "/twilio/sms/" + path }

	// Outbound SMS: basic auth to the API.
	alice.SendChat(t, friendJID, "outbound with secrets around")
	sent := tw.WaitMessages(t, 1, wait)[0]

	// Inbound, signed with the token.
	if code, body := tw.PostWebhook(t, webhook("sms"), tw.InboundSMS(friend, aliceNum, "inbound with secrets around")); code != http.StatusOK {
		t.Fatalf("inbound webhook: %d %q", code, body)
	}
	chatFrom(t, alice, friendJID, "inbound with secrets around")

	// A forged webhook: the 403 says which URL was expected, not the token.
	forged := tw.InboundSMS(friend, aliceNum, "forged")
	code, body := twiliotest.PostSigned(t, webhook("sms"), twiliotest.Sign("not-the-token", webhook("sms"), forged), forged)
	if code != http.StatusForbidden {
		t.Fatalf("forged webhook: %d", code)
	}
	assertNoSecrets(t, "the 403 answer", body)

	// Delivery report.
	if code, _ := tw.PostWebhook(t, webhook("status"), tw.StatusCallback(sent, "delivered", 0)); code/100 != 2 {
		t.Fatalf("status webhook: %d", code)
	}

	// MMS: the gateway fetches the media with the account's credentials.
	img := bytes.Repeat([]byte("GIF89a"), 50)
	tw.PostWebhook(t, webhook("sms"), tw.InboundSMS(friend, aliceNum, "a picture", tw.AddMedia("image/gif", img)))
	chatFrom(t, alice, friendJID, "a picture")
	oob := alice.WaitStanza(t, wait, func(s xmpptest.Stanza) bool {
		return bare(s.From) == friendJID && strings.Contains(s.Raw, "jabber:x:oob")
	})
	assertNoSecrets(t, "the media link", oob.Raw)
	resp, err := http.Get(oob.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, img) {
		t.Fatalf("media: %d, %d bytes", resp.StatusCode, len(got))
	}
	for k, v := range resp.Header {
		assertNoSecrets(t, "media answer header "+k, strings.Join(v, " "))
	}

	// Twilio refusals: STOP, and the credentials themselves refused.
	tw.FailNext(twiliotest.Failure{Status: 400, Code: 21610})
	alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='leak-stop'><body>after STOP</body></message>`)
	if s := errorFor(t, alice, "leak-stop"); s.ErrorCondition != "not-allowed" {
		t.Errorf("21610: %s", s.Raw)
	}
	tw.FailNext(twiliotest.Failure{Status: 401, Code: 20003})
	alice.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='leak-auth'><body>refused credentials</body></message>`)
	s := errorFor(t, alice, "leak-auth")
	if s.ErrorCondition != "service-unavailable" {
		t.Errorf("401: %s", s.Raw)
	}
	assertNoSecrets(t, "the error stanza for refused credentials", s.Raw)

	// Registration from the pool, and a message from the new number.
	bob.SendRaw(t, `<iq to='`+smsDomain+`' type='set' id='leak-reg'><query xmlns='jabber:iq:register'/></iq>`)
	if s := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.ID == "leak-reg" }); s.Type != "result" {
		t.Fatalf("register: %s", s.Raw)
	}
	n := len(tw.Messages())
	bob.SendChat(t, friendJID, "from the pool")
	if m := tw.WaitMessages(t, n+1, wait)[n]; m.From != poolNum {
		t.Errorf("bob sent from %q", m.From)
	}
	for _, c := range []*xmpptest.Client{alice, bob} {
		assertNoSecrets(t, c.BareJID()+"'s stream", strings.Join(c.Stanzas(), "\n"))
	}

	// A gateway with the wrong secret explains itself without the secret.
	bad := startGateway(t, strings.NewReplacer("sandbox.localhost", locked, "level: info", "level: debug").
		Replace(sandboxConfig(srv.ComponentAddr(), domain, wrongSecret)))
	bad.waitLog("rejected the handshake", wait)
	readyBad := bad.waitHTTP("/readyz", http.StatusServiceUnavailable, "not-authorized", wait)
	assertNoSecrets(t, "/readyz of the gateway with a wrong secret", readyBad)

	for _, path := range []string{"/readyz", "/metrics", "/healthz"} {
		code, body, err := g.get(path)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s: %d %v", path, code, err)
		}
		assertNoSecrets(t, path, body)
	}
	_, metrics, _ := bad.get("/metrics")
	assertNoSecrets(t, "/metrics of the gateway with a wrong secret", metrics)

	// check-config: the file as run, and the secrets from the environment
	// and from --set.
	file := filepath.Join(dir, "xmppgw.yaml")
	out := checkConfig(t, nil, "-c", file)
	assertNoSecrets(t, "check-config", out)
	bare := filepath.Join(t.TempDir(), "bare.yaml")
	cfg := strings.NewReplacer("%DATA%", filepath.Join(dir, "data"), "%HTTP%", "127.0.0.1:8080").
		Replace(secretsConfig(srv.ComponentAddr(), tw.URL, false))
	if err := os.WriteFile(bare, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out = checkConfig(t, []string{"XMPPGW_GATEWAYS__SMS__SECRET=" + leakSecret, "XMPPGW_GATEWAYS__SMS__TWILIO__AUTH_TOKEN=" + leakToken}, "-c", bare)
	assertNoSecrets(t, "check-config with secrets from the environment", out)
	out = checkConfig(t, nil, "-c", bare, "--set", "gateways.sms.secret="+leakSecret, "--set", "gateways.sms.twilio.auth_token="+leakToken)
	assertNoSecrets(t, "check-config with secrets from --set", out)

	// The whole log, shutdown included.
	g.stop()
	bad.stop()
	log := g.log.String()
	if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "bad or missing signature") {
		t.Fatalf("the log does not look like a debug log of this test:\n%s", log)
	}
	assertNoSecrets(t, "the gateway's log", log)
	assertNoSecrets(t, "the log of the gateway with a wrong secret", bad.log.String())
}

// checkConfig runs `xmppgw check-config args…` and returns its output; it
// must succeed and redact.
func checkConfig(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"check-config"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check-config %v: %v\n%s", args, err, out)
	}
	if n := strings.Count(string(out), "[redacted]"); n < 2 {
		t.Errorf("check-config %v shows %d redacted values, want at least 2 (secret, auth_token):\n%s", args, n, out)
	}
	return string(out)
}

// listeningPorts returns the TCP ports pid listens on: its socket inodes
// (/proc/pid/fd) matched to LISTEN rows of /proc/pid/net/tcp and tcp6.
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	sockets := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			sockets[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if os.IsNotExist(err) {
			continue // no IPv6
		}
		if err != nil {
			t.Fatal(err)
		}
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !sockets[f[9]] {
				continue
			}
			port, err := strconv.ParseUint(f[1][strings.LastIndexByte(f[1], ':')+1:], 16, 16)
			if err != nil {
				t.Fatalf("%s row %q: %v", table, line, err)
			}
			ports = append(ports, int(port))
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, _ := strings.Cut(addr, ":")
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("port of %q: %v", addr, err)
	}
	return n
}

// TestNoListenerUnlessAsked: the gateway opens exactly the ports it is
// configured to: the HTTP listener when http.listen is set, the embedded
// NATS server's client port only with bus.listen, nothing otherwise.
func TestNoListenerUnlessAsked(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	base := sandboxConfig(srv.ComponentAddr(), domain, "secret")
	busAddr := proctest.FreeAddr(t)
	noHTTP := strings.Replace(base, "http:\n  listen: %HTTP%\n  public_url: http://%HTTP%\n", "", 1)
	if noHTTP == base {
		t.Fatal("sandboxConfig has no http block to remove")
	}
	tests := []struct {
		name   string
		config string
		http   bool
		bus    bool
	}{
		{"defaults with http.listen", base, true, false},
		{"bus.listen", strings.Replace(base, "bus:\n", "bus:\n  listen: "+busAddr+"\n", 1), true, true},
		{"no http.listen", noHTTP, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			httpAddr := proctest.FreeAddr(t)
			g := startGatewayIn(t, t.TempDir(), httpAddr, tt.config)
			if tt.http {
				g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
			}
			g.waitLog("component stream up", wait)
			g.waitLog("xmppgw started", wait)
			want := []int{}
			if tt.http {
				want = append(want, portOf(t, httpAddr))
			}
			if tt.bus {
				want = append(want, portOf(t, busAddr))
			}
			slices.Sort(want)
			var got []int
			if !poll(wait, func() bool { got = listeningPorts(t, g.cmd.Process.Pid); return slices.Equal(got, want) }) {
				t.Errorf("listening on TCP ports %v, want %v", got, want)
			}
			// The process must still be the one we looked at.
			if !g.running() {
				t.Fatalf("xmppgw exited: %v", g.exitErr)
			}
			g.stop()
		})
	}
}

// TestWebhookLimits: what the webhook endpoints refuse.
func TestWebhookLimits(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw := twiliotest.Start(t, accountSID, authToken)
	g := startGateway(t, twilioConfig(srv.ComponentAddr(), tw.URL, "localhost"))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")
	base := g.httpURL + "/twilio/sms/"

	t.Run("body over 64 KiB", func(t *testing.T) {
		params := tw.InboundSMS(friend, aliceNum, "oversized "+strings.Repeat("x", 64<<10))
		if code, body := tw.PostWebhook(t, base+"sms", params); code != http.StatusRequestEntityTooLarge {
			t.Errorf("a signed %d-byte webhook answered %d %q, want 413", len(params.Encode()), code, body)
		}
		// The next genuine one is delivered, and only it.
		tw.PostWebhook(t, base+"sms", tw.InboundSMS(friend, aliceNum, "after the oversized one"))
		chatFrom(t, alice, friendJID, "after the oversized one")
		for _, raw := range alice.Stanzas() {
			if strings.Contains(raw, "oversized xxx") {
				t.Errorf("the oversized message was delivered")
			}
		}
	})

	t.Run("GET on the webhooks", func(t *testing.T) {
		for _, path := range []string{"sms", "status"} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), http.MethodPost) {
				t.Errorf("GET %s: %d, Allow %q; want 405 allowing POST", path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	})

	t.Run("guessed media links", func(t *testing.T) {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		token := base64.RawURLEncoding.EncodeToString(b) // 22 characters, as issued
		for _, name := range []string{token, token + ".png", "%2A", "%3E", "twilio.sms.sid.x", "AAAAAAAAAAAAAAAAAAAAAA"} {
			if code, body, err := g.get("/twilio/sms/media/" + name); err != nil || code != http.StatusNotFound {
				t.Errorf("media/%s: %d %q %v, want 404", name, code, body, err)
			}
		}
		if tw.MediaFetches() != 0 {
			t.Errorf("guessed links caused %d fetches from Twilio", tw.MediaFetches())
		}
	})
}

// TestQuota: a user's allowance is enforced before anything is queued, and
// the refusal says what the limit is.
func TestQuota(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw := twiliotest.Start(t, accountSID, authToken)
	cfg := twilioConfig(srv.ComponentAddr(), tw.URL, "localhost")
	limited := strings.Replace(cfg, "    adapter: twilio\n", "    adapter: twilio\n    quota: {messages: 3, per: 1h}\n", 1)
	if limited == cfg {
		t.Fatal("twilioConfig has no adapter line to put the quota after")
	}
	g := startGateway(t, limited)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(t, srv, "alice", "password")

	for i := 1; i <= 4; i++ {
		alice.SendRaw(t, fmt.Sprintf(`<message to='%s' type='chat' id='quota-%d'><body>message %d</body></message>`, friendJID, i, i))
	}
	s := errorFor(t, alice, "quota-4")
	if s.ErrorCondition != "resource-constraint" || !strings.Contains(s.ErrorText, "3 messages per 1h0m0s") {
		t.Errorf("4th message: %s %q; want resource-constraint naming 3 messages per 1h0m0s", s.ErrorCondition, s.ErrorText)
	}
	// Another resource of the same account shares the allowance.
	other := xmpptest.Login(t, srv, "alice", "password")
	other.SendRaw(t, `<message to='`+friendJID+`' type='chat' id='quota-5'><body>from another resource</body></message>`)
	if s := errorFor(t, other, "quota-5"); s.ErrorCondition != "resource-constraint" {
		t.Errorf("another resource: %s", s.Raw)
	}

	// The refused ones were never queued; the others were all sent.
	msgs := tw.WaitMessages(t, 3, wait)
	g.waitMetric(t, `xmppgw_messages_total{direction="out",gateway="sms",result="sent"}`, func(v float64) bool { return v == 3 })
	if got := tw.Requests(); got != 3 || len(tw.Messages()) != 3 {
		t.Errorf("Twilio got %d requests, %d messages; want exactly 3", got, len(tw.Messages()))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("message %d", i+1); m.Body != want {
			t.Errorf("message %d: %q, want %q", i, m.Body, want)
		}
	}
	for _, id := range []string{"quota-1", "quota-2", "quota-3"} {
		for _, raw := range alice.Stanzas() {
			if strings.Contains(raw, "'"+id+"'") || strings.Contains(raw, `"`+id+`"`) {
				t.Errorf("%s within the quota got an answer: %s", id, raw)
			}
		}
	}
	if v := g.metric(t, `xmppgw_messages_total{direction="out",gateway="sms",result="rejected"}`); v != 2 {
		t.Errorf("rejected = %v, want 2", v)
	}
}
