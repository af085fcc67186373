package e2e_test

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/pushtest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const (
	pushDomain       = "push.localhost"
	strictPushDomain = "push-strict.localhost"
)

// pushCommandResult is the <command/> answer of a registration.
type pushCommandResult struct {
	Command struct {
		Status string `xml:"status,attr"`
		Fields []struct {
			Var    string   `xml:"var,attr"`
			Values []string `xml:"value"`
		} `xml:"x>field"`
	} `xml:"http://jabber.org/protocol/commands command"`
}

var pushIQ int

// sendIQ sends an IQ set and waits for its answer.
func sendIQ(t *testing.T, c *xmpptest.Client, to, payload string) xmpptest.Stanza {
	t.Helper()
	pushIQ++
	id := fmt.Sprintf("push%d", pushIQ)
	toAttr := ""
	if to != "" {
		toAttr = ` to="` + to + `"`
	}
	c.SendRaw(t, fmt.Sprintf(`<iq type="set" id="%s"%s>%s</iq>`, id, toAttr, payload))
	return c.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == id })
}

// registerPush runs a registration command in one request, as
// Conversations does, and returns node and secret.
func registerPush(t *testing.T, c *xmpptest.Client, domain, node string, fields map[string]string) (string, string, xmpptest.Stanza) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `<command xmlns="http://jabber.org/protocol/commands" node="%s" action="execute"><x xmlns="jabber:x:data" type="submit">`, node)
	for k, v := range fields {
		fmt.Fprintf(&b, `<field var="%s"><value>%s</value></field>`, k, v)
	}
	b.WriteString(`</x></command>`)
	st := sendIQ(t, c, domain, b.String())
	if st.Type != "result" {
		return "", "", st
	}
	var r pushCommandResult
	if err := xml.Unmarshal([]byte(st.Raw), &r); err != nil {
		t.Fatalf("%s: %v", st.Raw, err)
	}
	var n, s string
	for _, f := range r.Command.Fields {
		if len(f.Values) == 0 {
			continue
		}
		switch f.Var {
		case "node":
			n = f.Values[0]
		case "secret":
			s = f.Values[0]
		}
	}
	if r.Command.Status != "completed" || n == "" || s == "" {
		t.Fatalf("registration answered %s", st.Raw)
	}
	return n, s, st
}

// enablePush is XEP-0357 <enable/> sent to the user's own server.
func enablePush(t *testing.T, c *xmpptest.Client, node, secret string) {
	t.Helper()
	st := sendIQ(t, c, "", fmt.Sprintf(`<enable xmlns="urn:xmpp:push:0" jid="%s" node="%s"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var="secret"><value>%s</value></field></x></enable>`, pushDomain, node, secret))
	if st.Type != "result" {
		t.Fatalf("enable: %s", st.Raw)
	}
}

// startPushGateway runs the gateway with the contract config for
// push.localhost (and its FCM and APNs pointed at fakes) and, with strict,
// a second push gateway, push-strict.localhost, with the defaults.
// (Not with ejabberd: with two component streams on its listener it was
// seen routing one domain's stanzas to the other's stream.)
func startPushGateway(t *testing.T, srv *xmpptest.Server, strict bool) (*gw, *pushtest.Distributor, *pushtest.FCM, *pushtest.APNs) {
	t.Helper()
	dist := pushtest.StartDistributor(t)
	fcm := pushtest.StartFCM(t)
	apns := pushtest.StartAPNs(t)
	config := fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %%DATA%%
http:
  listen: %%HTTP%%
log:
  level: info
gateways:
  push:
    domain: %s
    secret: secret
    adapter: push
    allowed_domains: [localhost]
    push:
      allow_private_endpoints: true   # tests only; default false
      device_burst: 3
      device_interval: 1h
      fcm:
        credentials_file: %s
        api_url: %s
      apns:
        key_file: %s
        key_id: %s
        team_id: %s
        topic: %s
        api_url: %s
`, srv.ComponentAddr(), pushDomain, fcm.CredentialsFile(t), fcm.URL,
		apns.KeyFile(t), apns.KeyID, apns.TeamID, apns.Topic, apns.URL)
	if strict {
		config += fmt.Sprintf(`  strict:
    domain: %s
    secret: secret
    adapter: push
    allowed_domains: [localhost]
`, strictPushDomain)
	}
	g := startGateway(t, config)
	return g, dist, fcm, apns
}

// pushAway logs user in, registers a device with command, enables push
// on the user's server with what it answered (secret may forge the
// secret), and closes the stream. It returns the node.
func pushAway(t *testing.T, srv *xmpptest.Server, user, command string, fields map[string]string, secret func(string) string) string {
	t.Helper()
	c := xmpptest.Login(t, srv, user, "password")
	node, sec, _ := registerPush(t, c, pushDomain, command, fields)
	if secret != nil {
		sec = secret(sec)
	}
	enablePush(t, c, node, sec)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return node
}

// pushCount is a sample of xmppgw_pushes_total of the gateway push (0 when
// absent).
func pushCount(t *testing.T, g *gw, service, result string) float64 {
	return max(g.metric(t, fmt.Sprintf(`xmppgw_pushes_total{gateway="push",result="%s",service="%s"}`, result, service)), 0)
}

// TestPushProsody: Prosody with mod_cloud_notify, mod_smacks and offline
// storage, and the gateway as its XEP-0357 app server, reached by real
// clients that register, enable push and go away.
func TestPushProsody(t *testing.T) {
	t.Parallel()
	users := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		users[u] = "password"
	}
	srv := xmpptest.StartProsody(t, xmpptest.Options{
		Components:     map[string]string{pushDomain: "secret", strictPushDomain: "secret"},
		Users:          users,
		Offline:        true,
		ProsodyModules: []string{"cloud_notify", "smacks"},
		// One error disables push for a device (default 16), so that the
		// test sees the server act on the gateway's answer.
		// The sender and the text go into every notification: the gateway
		// must keep them from the devices that did not ask for them.
		ProsodySettings: map[string]string{"push_max_errors": "1", "push_notification_with_body": "true", "push_notification_with_sender": "true"},
	})
	g, dist, fcm, apns := startPushGateway(t, srv, true)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	bob := xmpptest.Login(t, srv, "bob", "password")

	away := func(t *testing.T, user, command string, fields map[string]string, secret func(string) string) string {
		return pushAway(t, srv, user, command, fields, secret)
	}
	pushes := func(service, result string) float64 { return pushCount(t, g, service, result) }

	t.Run("loopback endpoint refused without allow_private_endpoints", func(t *testing.T) {
		c := xmpptest.Login(t, srv, "frank", "password")
		_, _, st := registerPush(t, c, strictPushDomain, "register-push-unifiedpush", map[string]string{"endpoint": dist.Endpoint("frank")})
		if st.Type != "error" || st.ErrorCondition != "not-acceptable" || !strings.Contains(st.ErrorText, "allow_private_endpoints") {
			t.Fatalf("want not-acceptable saying why, got %s", st.Raw)
		}
	})

	t.Run("disco", func(t *testing.T) {
		pushIQ++
		id := fmt.Sprintf("disco%d", pushIQ)
		bob.SendRaw(t, fmt.Sprintf(`<iq type="get" id="%s" to="%s"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`, id, pushDomain))
		st := bob.WaitStanza(t, wait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == id })
		var info struct {
			Identities []struct {
				Category string `xml:"category,attr"`
				Type     string `xml:"type,attr"`
			} `xml:"query>identity"`
			Features []struct {
				Var string `xml:"var,attr"`
			} `xml:"query>feature"`
		}
		if err := xml.Unmarshal([]byte(st.Raw), &info); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, id := range info.Identities {
			got = append(got, id.Category+"/"+id.Type)
		}
		for _, f := range info.Features {
			got = append(got, f.Var)
		}
		for _, want := range []string{"pubsub/push", "urn:xmpp:push:0", "http://jabber.org/protocol/commands"} {
			if !slices.Contains(got, want) {
				t.Errorf("disco#info lacks %s: %s", want, st.Raw)
			}
		}
	})

	var aliceNode string
	t.Run("UnifiedPush", func(t *testing.T) {
		aliceNode = away(t, "alice", "register-push-unifiedpush", map[string]string{"endpoint": dist.Endpoint("alice")}, nil)
		start := time.Now()
		bob.SendChat(t, "alice@localhost", "are you there?")
		r := dist.WaitRequests(t, 1, 5*time.Second)[0]
		t.Logf("the endpoint got the push %v after the message", time.Since(start).Round(time.Millisecond))
		if r.Path != "/up/alice" || r.Header.Get("TTL") == "" || r.Header.Get("Urgency") != "high" {
			t.Errorf("POST %s %v", r.Path, r.Header)
		}
		if body := string(r.Body); strings.Contains(body, "are you there") || strings.Contains(body, "bob@") || !strings.Contains(body, aliceNode) {
			t.Errorf("body %s: want the node and no content (not opted in)", body)
		}
	})

	t.Run("a burst yields a bounded number of pushes", func(t *testing.T) {
		if aliceNode == "" {
			t.Skip("needs the UnifiedPush registration")
		}
		before := len(dist.Requests())
		accepted := pushes("unifiedpush", "accepted")
		for i := range 100 {
			bob.SendChat(t, "alice@localhost", fmt.Sprintf("burst %d", i))
		}
		// Every publish is answered and settled: sent or limited.
		g.waitMetric(t, `xmppgw_pushes_total{gateway="push",result="accepted",service="unifiedpush"}`, func(v float64) bool { return v >= accepted+100 })
		if !poll(wait, func() bool {
			return pushes("unifiedpush", "sent")+pushes("unifiedpush", "limited") >= pushes("unifiedpush", "accepted")
		}) {
			t.Fatalf("not every accepted publish was settled: accepted %v, sent %v, limited %v",
				pushes("unifiedpush", "accepted"), pushes("unifiedpush", "sent"), pushes("unifiedpush", "limited"))
		}
		// Burst 3, one used by the first message: two more, then nothing
		// within device_interval.
		if n := len(dist.Requests()) - before; n != 2 {
			t.Errorf("100 messages made %d pushes, want 2 (device_burst 3, one used)", n)
		}
	})

	t.Run("FCM", func(t *testing.T) {
		node := away(t, "carol", "register-push-fcm", map[string]string{"token": "carol-fcm-token", "android-id": "carol-phone"}, nil)
		bob.SendChat(t, "carol@localhost", "hi carol")
		msg := fcm.WaitRequests(t, 1, 5*time.Second)[0].JSON(t)["message"].(map[string]any)
		data := msg["data"].(map[string]any)
		if msg["token"] != "carol-fcm-token" || data["node"] != node || data["body"] != nil || data["sender"] != nil {
			t.Errorf("FCM message %v", msg)
		}
	})

	t.Run("APNs", func(t *testing.T) {
		token := strings.Repeat("0123456789abcdef", 4)
		node := away(t, "dave", "register-push-apns", map[string]string{"token": token, "include-content": "true"}, nil)
		bob.SendChat(t, "dave@localhost", "hi dave")
		r := apns.WaitRequests(t, 1, 5*time.Second)[0]
		p := r.JSON(t)
		alert, _ := p["aps"].(map[string]any)["alert"].(map[string]any)
		// Content was asked for: the sender and the text.
		if r.Path != "/3/device/"+token || p["node"] != node || alert == nil || !strings.HasPrefix(fmt.Sprint(alert["title"]), "bob@localhost") || alert["body"] != "hi dave" {
			t.Errorf("APNs %s %s", r.Path, r.Body)
		}
	})

	t.Run("a forged secret is refused", func(t *testing.T) {
		away(t, "erin", "register-push-unifiedpush", map[string]string{"endpoint": dist.Endpoint("erin")}, func(string) string { return "forged" })
		refused := pushes("unifiedpush", "refused")
		bob.SendChat(t, "erin@localhost", "hi erin")
		g.waitMetric(t, `xmppgw_pushes_total{gateway="push",result="refused",service="unifiedpush"}`, func(v float64) bool { return v > refused })
		if !poll(wait, func() bool { return strings.Contains(srv.Log(), "auth:forbidden") }) {
			t.Errorf("Prosody did not log the forbidden answer:\n%s", srv.Log())
		}
		for _, r := range dist.Requests() {
			if r.Path == "/up/erin" {
				t.Errorf("a push went out for a forged secret")
			}
		}
	})

	t.Run("a gone endpoint disables push on the server", func(t *testing.T) {
		if aliceNode == "" {
			t.Skip("needs the UnifiedPush registration")
		}
		// The burst is spent: a new device of alice's takes over.
		c := xmpptest.Login(t, srv, "alice", "password")
		sendIQ(t, c, "", fmt.Sprintf(`<disable xmlns="urn:xmpp:push:0" jid="%s" node="%s"/>`, pushDomain, aliceNode))
		node, secret, _ := registerPush(t, c, pushDomain, "register-push-unifiedpush", map[string]string{"endpoint": dist.Endpoint("alice2")})
		enablePush(t, c, node, secret)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		dist.Gone("alice2", http.StatusGone)
		bob.SendChat(t, "alice@localhost", "first")
		g.waitMetric(t, `xmppgw_pushes_total{gateway="push",result="gone",service="unifiedpush"}`, func(v float64) bool { return v >= 1 })
		// The registration is gone: the next publish is refused
		// item-not-found, and Prosody (push_max_errors 1) disables push.
		bob.SendChat(t, "alice@localhost", "second")
		if !poll(wait, func() bool { return strings.Contains(srv.Log(), "cancel:item-not-found") }) {
			t.Fatalf("Prosody did not get item-not-found:\n%s", srv.Log())
		}
		if !poll(wait, func() bool { return strings.Contains(srv.Log(), "Disabling push notifications") }) {
			t.Fatalf("Prosody did not disable push:\n%s", srv.Log())
		}
	})
}

// TestPushEjabberd: ejabberd's mod_push as the server half. Its publishes
// come from the user's bare JID.
func TestPushEjabberd(t *testing.T) {
	t.Parallel()
	srv := xmpptest.StartEjabberd(t, xmpptest.Options{
		Components: map[string]string{pushDomain: "secret"},
		Users:      map[string]string{"alice": "password", "bob": "password", "erin": "password"},
		Offline:    true,
		EjabberdModules: map[string]string{
			"mod_push":        "{include_sender: true, include_body: true}",
			"mod_stream_mgmt": "{resend_on_timeout: if_offline}",
		},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ejabberd log:\n%s", srv.Log())
		}
	})
	g, dist, _, _ := startPushGateway(t, srv, false)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	bob := xmpptest.Login(t, srv, "bob", "password")

	node := pushAway(t, srv, "alice", "register-push-unifiedpush", map[string]string{"endpoint": dist.Endpoint("alice")}, nil)
	bob.SendChat(t, "alice@localhost", "are you there?")
	r := dist.WaitRequests(t, 1, 5*time.Second)[0]
	if body := string(r.Body); r.Header.Get("TTL") == "" || strings.Contains(body, "are you there") || !strings.Contains(body, node) {
		t.Errorf("POST %v %s", r.Header, body)
	}

	pushAway(t, srv, "erin", "register-push-unifiedpush", map[string]string{"endpoint": dist.Endpoint("erin")}, func(string) string { return "forged" })
	refused := pushCount(t, g, "unifiedpush", "refused")
	bob.SendChat(t, "erin@localhost", "hi erin")
	g.waitMetric(t, `xmppgw_pushes_total{gateway="push",result="refused",service="unifiedpush"}`, func(v float64) bool { return v > refused })

	// A gone endpoint: the registration is removed, and ejabberd's next
	// publish for it is answered item-not-found.
	dist.Gone("alice", http.StatusNotFound)
	bob.SendChat(t, "alice@localhost", "first")
	g.waitMetric(t, `xmppgw_pushes_total{gateway="push",result="gone",service="unifiedpush"}`, func(v float64) bool { return v >= 1 })
	bob.SendChat(t, "alice@localhost", "second")
	g.waitMetric(t, `xmppgw_pushes_total{gateway="push",result="refused",service="none"}`, func(v float64) bool { return v >= 1 })
}
