package push_test

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/push"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/pushtest"
)

const (
	alice = "alice@localhost"
	wait  = 10 * time.Second
)

func newConfig(t *testing.T, edit func(c *push.Config)) *push.Config {
	t.Helper()
	info, ok := gateways.Lookup("push")
	if !ok {
		t.Fatal("adapter push is not registered")
	}
	c := info.NewConfig().(*push.Config)
	if edit != nil {
		edit(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return c
}

func newAdapter(t *testing.T, c *push.Config) *push.Adapter {
	t.Helper()
	b := bustest.Open(t)
	kv, err := b.JetStream().KeyValue(t.Context(), bus.BucketRegistrations)
	if err != nil {
		t.Fatal(err)
	}
	a, err := push.New(gateways.Params{Name: "push", Domain: "push.localhost", Config: c, Registrations: kv})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	return a.(*push.Adapter)
}

func command(t *testing.T, a *push.Adapter, node string) gateways.Command {
	t.Helper()
	for _, c := range a.Commands() {
		if c.Node == node {
			return c
		}
	}
	t.Fatalf("no command %s", node)
	return gateways.Command{}
}

// register runs a registration command and returns node and secret.
func register(t *testing.T, a *push.Adapter, cmd, user string, values map[string]string) (node, secret string, err error) {
	t.Helper()
	v := map[string][]string{}
	for k, s := range values {
		v[k] = []string{s}
	}
	res, err := command(t, a, cmd).Execute(t.Context(), user, v)
	if err != nil {
		return "", "", err
	}
	for _, f := range res.Fields {
		switch f.Var {
		case "node":
			node = f.Values[0]
		case "secret":
			secret = f.Values[0]
		}
	}
	if len(node) < 22 || len(secret) < 22 {
		t.Fatalf("node %q, secret %q: want 128 bits or more each", node, secret)
	}
	return node, secret, nil
}

// publishXML is what Prosody's mod_cloud_notify sends.
func publishXML(node, secret, sender, body string) string {
	return fmt.Sprintf(`<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="%s"><item><notification xmlns="urn:xmpp:push:0"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>urn:xmpp:push:summary</value></field><field var="message-count"><value>1</value></field><field var="last-message-sender"><value>%s</value></field><field var="last-message-body"><value>%s</value></field></x></notification></item></publish><publish-options><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var="secret"><value>%s</value></field></x></publish-options></pubsub>`,
		node, sender, body, secret)
}

// publish serves a publish IQ from the server from and returns the queued
// envelope.
func publish(t *testing.T, a *push.Adapter, from, payload string) (*bus.Envelope, error) {
	t.Helper()
	h := a.IQHandlers()[0]
	ans, err := h.Serve(t.Context(), gateways.IQ{ID: "p1", From: from, To: "push.localhost", Type: "set", Decode: func(v any) error {
		return xml.Unmarshal([]byte(payload), v)
	}})
	if err != nil {
		return nil, err
	}
	if ans.Queue == nil || ans.QueueID != "push:"+from+"|p1" {
		t.Fatalf("accepted publish queued %+v with id %q", ans.Queue, ans.QueueID)
	}
	return ans.Queue, nil
}

// deliver hands a queued push to the adapter as the runner does.
func deliver(t *testing.T, a *push.Adapter, e *bus.Envelope, attempt int) error {
	t.Helper()
	return a.Push(t.Context(), gateways.Push{User: e.User, Node: e.Push.Node, Count: e.Push.Count, Sender: e.Push.Sender, Body: e.Push.Body, Key: "k", Attempt: attempt})
}

func wantCondition(t *testing.T, err error, cond gateways.Condition) {
	t.Helper()
	var ge *gateways.Error
	if !errors.As(err, &ge) || ge.Condition != cond {
		t.Fatalf("error %v, want condition %s", err, cond)
	}
}

func TestUnifiedPush(t *testing.T) {
	t.Parallel()
	d := pushtest.StartDistributor(t)
	a := newAdapter(t, newConfig(t, func(c *push.Config) { c.AllowPrivateEndpoints = true }))

	node, secret, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": d.Endpoint("phone")})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("refused publishes", func(t *testing.T) {
		_, err := publish(t, a, "localhost", publishXML(node, "wrong", "bob@localhost", "New Message!"))
		wantCondition(t, err, gateways.Forbidden)
		_, err = publish(t, a, "localhost", publishXML(node, "", "", ""))
		wantCondition(t, err, gateways.Forbidden)
		_, err = publish(t, a, "evil.example", publishXML(node, secret, "", ""))
		wantCondition(t, err, gateways.Forbidden)
		_, err = publish(t, a, "localhost", publishXML("aaaaaaaaaaaaaaaaaaaaaaaaaa", secret, "", ""))
		wantCondition(t, err, gateways.ItemNotFound)
	})
	t.Run("delivered without content", func(t *testing.T) {
		e, err := publish(t, a, "localhost", publishXML(node, secret, "bob@localhost", "hello there"))
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != bus.KindPush || e.User != alice || e.Contact != node || e.Push.Sender != "" || e.Push.Body != "" || e.Push.Count != 1 {
			t.Fatalf("queued %+v %+v: content must not reach the bus without opt-in", e, e.Push)
		}
		if err := deliver(t, a, e, 1); err != nil {
			t.Fatal(err)
		}
		r := d.WaitRequests(t, 1, wait)[0]
		if r.Header.Get("TTL") != "86400" || r.Header.Get("Urgency") != "high" || r.Header.Get("Topic") != node {
			t.Errorf("headers %v", r.Header)
		}
		if got := r.JSON(t); len(got) != 2 || got["node"] != node || got["count"] != 1.0 {
			t.Errorf("body %s", r.Body)
		}
	})
	t.Run("content when opted in", func(t *testing.T) {
		node2, secret2, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": d.Endpoint("tablet"), "include-content": "true"})
		if err != nil {
			t.Fatal(err)
		}
		e, err := publish(t, a, "localhost", publishXML(node2, secret2, "bob@localhost", "hello there"))
		if err != nil {
			t.Fatal(err)
		}
		if err := deliver(t, a, e, 1); err != nil {
			t.Fatal(err)
		}
		reqs := d.WaitRequests(t, 2, wait)
		if got := reqs[1].JSON(t); got["sender"] != "bob@localhost" || got["body"] != "hello there" {
			t.Errorf("body %s", reqs[1].Body)
		}
	})
	t.Run("rate limited per device", func(t *testing.T) {
		before := len(d.Requests())
		for range 10 {
			e, err := publish(t, a, "localhost", publishXML(node, secret, "", ""))
			if err != nil {
				t.Fatal(err)
			}
			if err := deliver(t, a, e, 1); err != nil {
				t.Fatal(err)
			}
		}
		// The burst (3) less the one push of "delivered without content".
		if n := len(d.Requests()) - before; n != 2 {
			t.Errorf("10 publishes made %d pushes, want 2", n)
		}
	})
	t.Run("gone endpoint removes the registration", func(t *testing.T) {
		node3, secret3, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": d.Endpoint("old")})
		if err != nil {
			t.Fatal(err)
		}
		d.Gone("old", 410)
		e, err := publish(t, a, "localhost", publishXML(node3, secret3, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		if err := deliver(t, a, e, 1); err != nil {
			t.Fatalf("a gone endpoint is settled, not retried: %v", err)
		}
		_, err = publish(t, a, "localhost", publishXML(node3, secret3, "", ""))
		wantCondition(t, err, gateways.ItemNotFound)
	})
}

// TestUnifiedPushEncrypted: an app that registered Web Push keys gets
// pushes only it can read (RFC 8291, aes128gcm).
func TestUnifiedPushEncrypted(t *testing.T) {
	t.Parallel()
	d := pushtest.StartDistributor(t)
	a := newAdapter(t, newConfig(t, func(c *push.Config) { c.AllowPrivateEndpoints = true }))
	app := pushtest.NewWebPushApp(t)
	_, _, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": d.Endpoint("enc"), "p256dh": app.P256DH()})
	wantCondition(t, err, gateways.NotAcceptable)
	_, _, err = register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": d.Endpoint("enc"), "p256dh": "bm90IGEga2V5", "auth": app.Auth()})
	wantCondition(t, err, gateways.NotAcceptable)
	node, secret, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{
		"endpoint": d.Endpoint("enc"), "p256dh": app.P256DH(), "auth": app.Auth(), "include-content": "1"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 2000) // 4000 bytes: cut to fit a push
	e, err := publish(t, a, "localhost", publishXML(node, secret, "bob@localhost", long))
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, a, e, 1); err != nil {
		t.Fatal(err)
	}
	r := d.WaitRequests(t, 1, wait)[0]
	if r.Header.Get("Content-Encoding") != "aes128gcm" || strings.Contains(string(r.Body), "bob@") {
		t.Fatalf("headers %v, body readable: %q", r.Header, r.Body)
	}
	pt, err := app.Decrypt(r.Body)
	if err != nil {
		t.Fatalf("the app cannot decrypt its push: %v", err)
	}
	var got struct{ Node, Sender, Body string }
	if err := json.Unmarshal(pt, &got); err != nil {
		t.Fatalf("%q: %v", pt, err)
	}
	if got.Node != node || got.Sender != "bob@localhost" || len(got.Body) > 1024 || !strings.HasSuffix(got.Body, "…") || !utf8.ValidString(got.Body) {
		t.Errorf("decrypted %q", pt)
	}
}

func TestEndpointChecks(t *testing.T) {
	t.Parallel()
	a := newAdapter(t, newConfig(t, nil))
	for _, ep := range []string{
		"http://127.0.0.1:8080/up/x", "https://localhost/up", "http://[::1]/x", "http://10.1.2.3/x",
		"http://192.168.1.1/x", "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", "http://100.64.0.1/x",
		"http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x",
	} {
		_, _, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": ep})
		wantCondition(t, err, gateways.NotAcceptable)
		if !strings.Contains(err.Error(), "allow_private_endpoints") {
			t.Errorf("%s: %v does not say why", ep, err)
		}
	}
	for _, ep := range []string{"ftp://example.com/x", "not a url", "http://user:pw@example.com/x", "/relative"} {
		_, _, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": ep})
		wantCondition(t, err, gateways.NotAcceptable)
	}
	// A public address literal passes the check (nothing is fetched).
	if _, _, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": "https://93.184.215.14/up/x"}); err != nil {
		t.Errorf("a public endpoint was refused: %v", err)
	}
}

func TestFCM(t *testing.T) {
	t.Parallel()
	f := pushtest.StartFCM(t)
	a := newAdapter(t, newConfig(t, func(c *push.Config) { c.FCM.CredentialsFile, c.FCM.APIURL = f.CredentialsFile(t), f.URL }))
	node, secret, err := register(t, a, "register-push-fcm", alice, map[string]string{"token": "fcm-token-1", "android-id": "a1"})
	if err != nil {
		t.Fatal(err)
	}
	pushOnce := func() error {
		e, err := publish(t, a, "localhost", publishXML(node, secret, "bob@localhost", "New Message!"))
		if err != nil {
			t.Fatal(err)
		}
		return deliver(t, a, e, 1)
	}
	if err := pushOnce(); err != nil {
		t.Fatal(err)
	}
	msg := f.WaitRequests(t, 1, wait)[0].JSON(t)["message"].(map[string]any)
	android := msg["android"].(map[string]any)
	data := msg["data"].(map[string]any)
	if msg["token"] != "fcm-token-1" || data["node"] != node || data["sender"] != nil || android["priority"] != "HIGH" || android["ttl"] != "86400s" || android["collapse_key"] != node {
		t.Errorf("message %v", msg)
	}
	if err := pushOnce(); err != nil {
		t.Fatal(err)
	}
	if n := f.TokensIssued(); n != 1 {
		t.Errorf("%d access tokens for two pushes, want 1 (cached)", n)
	}
	// An expired access token: 401, retried with a new one.
	f.ExpireTokens()
	if err := pushOnce(); err == nil || errors.Is(err, gateways.ErrPermanent) {
		t.Fatalf("401: %v, want a transient error", err)
	}
	// The same device registering again keeps its node.
	again, secret2, err := register(t, a, "register-push-fcm", alice, map[string]string{"token": "fcm-token-1", "android-id": "a1"})
	if err != nil || again != node || secret2 == secret {
		t.Fatalf("re-registration: node %q (want %q), new secret %v, err %v", again, node, secret2 != secret, err)
	}
	secret = secret2
	e, err := publish(t, a, "localhost", publishXML(node, secret, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, a, e, 2); err != nil { // the retry, with a new token
		t.Fatal(err)
	}
	if n := f.TokensIssued(); n != 2 {
		t.Errorf("%d access tokens, want 2", n)
	}
	f.FailNext(503)
	if err := deliver(t, a, e, 2); err == nil || errors.Is(err, gateways.ErrPermanent) {
		t.Fatalf("503: %v, want a transient error", err)
	}
	f.Unregister("fcm-token-1")
	if err := deliver(t, a, e, 3); err != nil {
		t.Fatalf("UNREGISTERED: %v, want it settled", err)
	}
	_, err = publish(t, a, "localhost", publishXML(node, secret, "", ""))
	wantCondition(t, err, gateways.ItemNotFound)
}

func TestAPNs(t *testing.T) {
	t.Parallel()
	ap := pushtest.StartAPNs(t)
	a := newAdapter(t, newConfig(t, func(c *push.Config) {
		c.APNs = push.APNsConfig{KeyFile: ap.KeyFile(t), KeyID: ap.KeyID, TeamID: ap.TeamID, Topic: ap.Topic, APIURL: ap.URL}
	}))
	token := strings.Repeat("ab12", 16)
	node, secret, err := register(t, a, "register-push-apns", alice, map[string]string{"token": token})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = register(t, a, "register-push-apns", alice, map[string]string{"token": "not-hex"})
	wantCondition(t, err, gateways.NotAcceptable)
	e, err := publish(t, a, "localhost", publishXML(node, secret, "bob@localhost", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, a, e, 1); err != nil {
		t.Fatal(err)
	}
	r := ap.WaitRequests(t, 1, wait)[0]
	aps := r.JSON(t)["aps"].(map[string]any)
	if r.Proto != 2 || aps["content-available"] != 1.0 || aps["alert"] != nil || r.Header.Get("apns-push-type") != "background" || r.Header.Get("apns-collapse-id") != node {
		t.Errorf("HTTP/%d %v %s", r.Proto, r.Header, r.Body)
	}
	ap.Unregister(token)
	if err := deliver(t, a, e, 2); err != nil {
		t.Fatalf("410: %v, want it settled", err)
	}
	_, err = publish(t, a, "localhost", publishXML(node, secret, "", ""))
	wantCondition(t, err, gateways.ItemNotFound)
}

func TestRegistrations(t *testing.T) {
	t.Parallel()
	a := newAdapter(t, newConfig(t, func(c *push.Config) { c.AllowPrivateEndpoints = true; c.MaxDevicesPerUser = 2 }))
	n1, _, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": "http://127.0.0.1:1/up/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": "http://127.0.0.1:1/up/2"}); err != nil {
		t.Fatal(err)
	}
	_, _, err = register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": "http://127.0.0.1:1/up/3"})
	wantCondition(t, err, gateways.ResourceConstraint)
	unregister := command(t, a, "unregister-push").Execute
	_, err = unregister(t.Context(), "bob@localhost", map[string][]string{"node": {n1}})
	wantCondition(t, err, gateways.ItemNotFound)
	if _, err := unregister(t.Context(), alice, map[string][]string{"node": {n1}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := register(t, a, "register-push-unifiedpush", alice, map[string]string{"endpoint": "http://127.0.0.1:1/up/3"}); err != nil {
		t.Errorf("after unregistering one: %v", err)
	}
	// Without FCM or APNs configured, their commands are not offered.
	for _, c := range a.Commands() {
		if c.Node == "register-push-fcm" || c.Node == "register-push-apns" {
			t.Errorf("%s offered without its service configured", c.Node)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	info, _ := gateways.Lookup("push")
	for _, tc := range []struct {
		edit func(c *push.Config)
		key  string
	}{
		{func(c *push.Config) { c.Urgency = "urgent" }, "urgency:"},
		{func(c *push.Config) { c.TTL = -time.Second }, "ttl:"},
		{func(c *push.Config) { c.DeviceBurst = 0 }, "device_burst:"},
		{func(c *push.Config) { c.DeviceInterval = 0 }, "device_interval:"},
		{func(c *push.Config) { c.RequestTimeout = time.Minute }, "request_timeout:"},
		{func(c *push.Config) { c.FCM.CredentialsFile = "/nonexistent.json" }, "fcm.credentials_file:"},
		{func(c *push.Config) { c.FCM.ProjectID = "p" }, "fcm.credentials_file:"},
		{func(c *push.Config) { c.FCM.APIURL = "fcm.googleapis.com" }, "fcm.api_url:"},
		{func(c *push.Config) { c.APNs.KeyFile = "/nonexistent.p8" }, "apns.key_file:"},
		{func(c *push.Config) { c.APNs.Topic = "x" }, "apns.key_file:"},
	} {
		c := info.NewConfig().(*push.Config)
		tc.edit(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Validate() = %v, want an error about %s", err, tc.key)
		}
	}
	if err := info.NewConfig().(*push.Config).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
