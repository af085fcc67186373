package scenario_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/scenario"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

func TestSeries(t *testing.T) {
	for _, tc := range []struct {
		s    scenario.Series
		i    int
		want string
	}{
		{scenario.Out, 42, "o-00042"},
		{scenario.In, 1, "i-00001"},
		{scenario.Echo, 99999, "s-99999"},
	} {
		if got := tc.s.ID(tc.i); got != tc.want {
			t.Errorf("%q.ID(%d) = %q, want %q", tc.s, tc.i, got, tc.want)
		}
		if got := tc.s.Number(tc.want); got != tc.i {
			t.Errorf("%q.Number(%q) = %d, want %d", tc.s, tc.want, got, tc.i)
		}
	}
	// Not of the series: another prefix, another width, a probe, a reply.
	for _, id := range []string{"i-00042", "o-0042", "o-000042", "o-abcde", "probe-1", "echo: o-00001", ""} {
		if got := scenario.Out.Number(id); got != 0 {
			t.Errorf("Out.Number(%q) = %d, want 0", id, got)
		}
	}
}

func TestChat(t *testing.T) {
	want := `<message to='+15551230001@sms.localhost' type='chat' id='o-00007'><body>o-00007</body></message>`
	if got := scenario.Chat(scenario.FriendJID, scenario.Out.ID(7)); got != want {
		t.Errorf("Chat = %s, want %s", got, want)
	}
}

// The files the suites wrote before they shared Config, byte for byte:
// the fault suite's in full, and the cluster suite's and the external-bus
// one by what they change in it.
func TestConfigYAML(t *testing.T) {
	const faults = `xmpp:
  server: 127.0.0.1:5000
bus:
  data_dir: /tmp/x/data
http:
  listen: 127.0.0.1:7000
  public_url: http://127.0.0.1:7000
log:
  level: info
gateways:
  sms:
    domain: sms.localhost
    secret: secret
    adapter: twilio
    quota:
      messages: 0
    twilio:
      account_sid: AC00000000000000000000000000000000
      auth_token: 0123456789abcdef0123456789abcdef
      api_url: http://127.0.0.1:6000
      default_region: US
      mps: 10000
      request_timeout: 500ms
      numbers:
        "+15550009999": alice@localhost
`
	externalBus := strings.NewReplacer(
		"  data_dir: /tmp/x/data\n", "  url: nats://127.0.0.1:4222\n",
		"      request_timeout: 500ms\n", "",
	).Replace(faults)
	cluster := "role: adapters\n" + strings.NewReplacer(
		"  data_dir: /tmp/x/data\n", "  url: nats://127.0.0.1:4222,nats://127.0.0.1:4223\n  replicas: 3\n",
		"  listen: 127.0.0.1:7000\n  public_url: http://127.0.0.1:7000\n", "  listen: 127.0.0.1:7001\n  public_url: http://127.0.0.1:7002\n",
		"      request_timeout: 500ms\n", "",
	).Replace(faults) + `  sandbox:
    domain: sandbox.localhost
    secret: secret
    adapter: sandbox
    quota:
      messages: 0
`
	for _, tc := range []struct {
		name string
		c    scenario.Config
		want string
	}{{
		name: "faults, embedded bus, request timeout",
		c: scenario.Config{
			XMPPServer: "127.0.0.1:5000", BusDataDir: "/tmp/x/data",
			Listen: "127.0.0.1:7000", PublicURL: "http://127.0.0.1:7000",
			TwilioAPI: "http://127.0.0.1:6000", RequestTimeout: 500 * time.Millisecond,
		},
		want: faults,
	}, {
		name: "faults, external bus",
		c: scenario.Config{
			XMPPServer: "127.0.0.1:5000", BusURL: "nats://127.0.0.1:4222", BusDataDir: "/tmp/x/data",
			Listen: "127.0.0.1:7000", PublicURL: "http://127.0.0.1:7000",
			TwilioAPI: "http://127.0.0.1:6000",
		},
		want: externalBus,
	}, {
		name: "cluster, one role of a split deployment",
		c: scenario.Config{
			Role: "adapters", XMPPServer: "127.0.0.1:5000",
			BusURL: "nats://127.0.0.1:4222,nats://127.0.0.1:4223", BusReplicas: 3,
			Listen: "127.0.0.1:7001", PublicURL: "http://127.0.0.1:7002",
			TwilioAPI: "http://127.0.0.1:6000", SandboxDomain: "sandbox.localhost",
		},
		want: cluster,
	}} {
		if got := tc.c.YAML(); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
}

func TestSumMetric(t *testing.T) {
	const exposition = `# HELP xmppgw_bus_pending_messages Messages on the bus not yet handled.
# TYPE xmppgw_bus_pending_messages gauge
xmppgw_bus_pending_messages{direction="in",gateway="sms",state="unacked"} 2
xmppgw_bus_pending_messages{direction="out",gateway="sms",state="waiting"} 3
xmppgw_bus_pending_messages_total 100
xmppgw_component_active 2
`
	for _, tc := range []struct {
		name    string
		labels  []string
		sum     float64
		samples int
		ok      bool
	}{
		{name: "xmppgw_bus_pending_messages", sum: 5, samples: 2, ok: true},
		{name: "xmppgw_bus_pending_messages", labels: []string{`direction="out"`}, sum: 3, samples: 1, ok: true},
		{name: "xmppgw_component_active", sum: 2, samples: 1, ok: true},
		{name: "xmppgw_messages_total", sum: 0, samples: 0, ok: true},
	} {
		sum, samples, ok := scenario.SumMetric(exposition, tc.name, tc.labels...)
		if sum != tc.sum || samples != tc.samples || ok != tc.ok {
			t.Errorf("%s %v: %v, %d, %v; want %v, %d, %v", tc.name, tc.labels, sum, samples, ok, tc.sum, tc.samples, tc.ok)
		}
	}
	if sum, _, ok := scenario.SumMetric("x{a=\"b\"} 1\nx{a=\"c\"} NaN?\n", "x"); ok || sum != 0 {
		t.Errorf("a sample that does not parse: %v, %v; want 0, false", sum, ok)
	}
}

func TestReportHelpers(t *testing.T) {
	if got := scenario.OutOfOrder([]int{1, 3, 2, 4, 2, 5}); got != 2 {
		t.Errorf("OutOfOrder = %d, want 2", got)
	}
	// 8 overtaking 1 is two conversations (8 mod 8 and 1 mod 8): in order;
	// 17 after 9 is one conversation in order; 9 after 17 would not be.
	if got := scenario.OutOfOrderPerConversation([]int{8, 1, 9, 16, 17, 2}); got != 0 {
		t.Errorf("OutOfOrderPerConversation = %d, want 0", got)
	}
	if got := scenario.OutOfOrderPerConversation([]int{1, 17, 9, 2}); got != 1 {
		t.Errorf("OutOfOrderPerConversation = %d, want 1", got)
	}
	if a, b := scenario.OutboundTo(1), scenario.OutboundTo(9); a != b || a != "+15551230002@"+scenario.SMSDomain {
		t.Errorf("OutboundTo(1), (9) = %q, %q: want one friend for both", a, b)
	}
	if got := scenario.Short([]int{1, 2, 3}); got != "[1 2 3]" {
		t.Errorf("Short = %q", got)
	}
	long := make([]int, 20)
	for i := range long {
		long[i] = i + 1
	}
	if got, want := scenario.Short(long), "[1 2 3 4 5 6 7 8 9 10 11 12]… (20 in all)"; got != want {
		t.Errorf("Short = %q, want %q", got, want)
	}
	if got, want := scenario.Tally(map[string]int{"500": 1, "429": 3, "conn-error": 2}), "429 ×3, 500 ×1, conn-error ×2"; got != want {
		t.Errorf("Tally = %q, want %q", got, want)
	}
	msgs := []twiliotest.Message{{Body: "o-00002"}, {Body: "probe-1"}, {Body: "o-00001"}, {Body: "o-00002"}, {Body: "o-00009"}}
	if got, want := scenario.TwilioCopies(msgs, 3), []int{0, 1, 2, 0}; !slices.Equal(got, want) {
		t.Errorf("TwilioCopies = %v, want %v", got, want)
	}
	if got, want := scenario.TwilioOrder(msgs, 3), []int{2, 1}; !slices.Equal(got, want) {
		t.Errorf("TwilioOrder = %v, want %v", got, want)
	}
}

func TestErrorCondition(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`<message type="error" id="o-00001"><error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
			"wait/resource-constraint"},
		{`<message type="error" id="o-00001"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><component-not-connected xmlns="xmpp:prosody.im/protocol/component"/></error></message>`,
			"cancel/service-unavailable (Prosody: component not connected)"},
		{`<message type="error" id="o-00001"><error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">the gateway could not confirm that it queued this message (its store did not answer); it may still be delivered</text></error></message>`,
			"wait/resource-constraint " + scenario.OutcomeUnknown},
	} {
		st, err := xmpptest.ParseStanza(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := scenario.ErrorCondition(st); got != tc.want {
			t.Errorf("ErrorCondition(%s) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestDue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	past := time.Now().Add(-time.Hour)
	if !scenario.Due(ctx, past, 1, 100) {
		t.Error("a message due an hour ago is not due")
	}
	began := time.Now()
	if !scenario.Due(ctx, began, 100, 3) || time.Since(began) < 20*time.Millisecond {
		t.Errorf("message 3 at 100/s: due after %v, want 20 ms", time.Since(began))
	}
	cancel()
	if scenario.Due(ctx, past, 1, 1) {
		t.Error("due after the context ended")
	}
	if scenario.Due(ctx, time.Now(), 1, 3600) {
		t.Error("waited out an hour with the context ended")
	}
}

// The socket window: a cut connection grants its tail, after the last
// message known to have got through; an orderly close grants nothing.
func TestToComponent(t *testing.T) {
	tap := proctest.TapSnapshot{
		{Ended: true, Abrupt: true, ToComp: []string{"o-00001", "o-00002", "o-00003", "probe-1", "o-00004"}},
		{Ended: true, CompClosed: true, ToComp: []string{"o-00005", "o-00006"}},
		{ToComp: []string{"o-00004", "o-00007"}},
	}
	through := map[int]bool{1: true, 3: true, 5: true, 7: true}
	c := scenario.ToComponent(tap, scenario.Out, 8, func(k int) bool { return through[k] })
	for k, want := range map[int]bool{1: false, 2: false, 3: false, 4: true, 5: false, 6: false, 7: false, 8: false} {
		if got := c.Window(k); got != want {
			t.Errorf("Window(%d) = %v, want %v", k, got, want)
		}
	}
	if conn, tail := c.Tail(6); !tail || !conn.CompClosed {
		t.Errorf("Tail(6) = %+v, %v: want the closed connection's tail", conn, tail)
	}
	if c.Seen(8) || !c.Seen(7) {
		t.Errorf("Seen(8) = %v, Seen(7) = %v", c.Seen(8), c.Seen(7))
	}
}

// Messages the XMPP server held for a stream that kill -9 cut: never on the
// tap, numbered between the last the cut stream carried and the first a
// later stream carried. A cut stream of another domain grants nothing.
func TestHeldByServer(t *testing.T) {
	tap := proctest.TapSnapshot{
		{Ended: true, Abrupt: true, ToComp: []string{"e-00001"}}, // another series
		{Ended: true, Abrupt: true, ToComp: []string{"o-00001", "o-00002", "o-00003"}},
		{ToComp: []string{"e-00002"}},
		{ToComp: []string{"o-00006", "o-00007"}},
	}
	c := scenario.ToComponent(tap, scenario.Out, 9, func(int) bool { return true })
	for k, want := range map[int]bool{1: false, 2: false, 3: false, 4: true, 5: true, 6: false, 7: false, 8: false, 9: false} {
		if got := c.HeldByServer(k); got != want {
			t.Errorf("HeldByServer(%d) = %v, want %v", k, got, want)
		}
	}
}

func TestInboundWindow(t *testing.T) {
	in := scenario.NewInbound(10)
	for i := 1; i <= 10; i++ {
		in.Answer(i, i != 9, map[bool]string{true: "200", false: "503"}[i != 9])
	}
	for n, k := range []int{1, 2, 4, 7, 7} {
		in.Receive(xmpptest.Stanza{From: scenario.FriendJID + "/x", ID: fmt.Sprint("stanza-", n), Body: scenario.In.ID(k)})
	}
	// Not the series, or not from the friend.
	in.Receive(xmpptest.Stanza{From: "someone@localhost", Body: scenario.In.ID(3)})
	in.Receive(xmpptest.Stanza{From: scenario.FriendJID, Body: "probe-1"})
	if !slices.Equal(in.Arrivals, []int{1, 2, 4, 7}) || in.Received[7] != 2 || in.Received[3] != 0 {
		t.Fatalf("arrivals %v, received %v", in.Arrivals, in.Received)
	}
	if in.SameID(7) || !in.SameID(4) || !in.SameID(3) {
		t.Errorf("SameID: 7 %v (two stanza ids), 4 %v (one), 3 %v (none)", in.SameID(7), in.SameID(4), in.SameID(3))
	}
	if in.Status["503"] != 1 || in.Accepted[9] || in.Attempts[9] != 1 {
		t.Errorf("status %v, accepted[9] %v", in.Status, in.Accepted[9])
	}

	tap := proctest.TapSnapshot{
		// Cut: 3 came after the last one received (2); 4 was received
		// on the next connection, but on this one it was the write in
		// progress only if nobody saw it, and someone did.
		{Ended: true, Abrupt: true, ToServer: []string{"i-00001", "i-00002", "i-00003"}},
		// Closed in order: 5 and 6 are not in the window.
		{Ended: true, ToServer: []string{"i-00004", "i-00005"}},
		// Cut after 7: 8 was being written and nobody saw it.
		{Ended: true, Abrupt: true, ToServer: []string{"i-00006", "i-00007"}},
	}
	window, inFlight := in.Window(tap)
	if want := map[int]bool{3: true, 8: true}; len(window) != len(want) || !window[3] || !window[8] || inFlight != 1 {
		t.Errorf("window %v, in flight %d; want %v, 1", window, inFlight, want)
	}
}

// The message written last before kill -9 and first after it is the one
// whose acknowledgement died with the process; other repeats are not.
func TestRewrittenAfterCut(t *testing.T) {
	in := scenario.NewInbound(10)
	tap := proctest.TapSnapshot{
		{Ended: true, Abrupt: true, ToServer: []string{"i-00001", "i-00002", "i-00003"}},
		{Ended: true, ToServer: []string{"i-00003", "i-00004", "i-00005"}}, // closed in order
		{Ended: true, ToServer: []string{"i-00005", "i-00006"}},            // not after a cut
		{Ended: true, Abrupt: true, ToServer: []string{"i-00007"}},         // nothing after it
	}
	if got := in.RewrittenAfterCut(tap); len(got) != 1 || !got[3] {
		t.Errorf("RewrittenAfterCut = %v, want only 3", got)
	}
}

// PostWebhook posts the same signed parameters until the gateway answers
// 200, reporting every answer.
func TestPostWebhook(t *testing.T) {
	tw := twiliotest.Start(t, scenario.AccountSID, scenario.AuthToken)
	var mu sync.Mutex
	var sids []string
	answers := []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusOK}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		url := srv.URL + scenario.WebhookPath
		if got, want := r.Header.Get("X-Twilio-Signature"), twiliotest.Sign(scenario.AuthToken, url, r.PostForm); got != want {
			t.Errorf("signature %q, want %q", got, want)
		}
		if r.PostForm.Get("Body") != "i-00007" || r.PostForm.Get("From") != scenario.Friend || r.PostForm.Get("To") != scenario.AliceNumber {
			t.Errorf("posted %v", r.PostForm)
		}
		mu.Lock()
		defer mu.Unlock()
		sids = append(sids, r.PostForm.Get("MessageSid"))
		w.WriteHeader(answers[len(sids)-1])
	}))
	defer srv.Close()

	var got []string
	ok := scenario.PostWebhook(context.Background(), tw, srv.URL+scenario.WebhookPath, 7, func(ok bool, answer string) {
		got = append(got, fmt.Sprint(ok, " ", answer))
	})
	if want := []string{"false 503", "false 429", "true 200"}; !ok || !slices.Equal(got, want) {
		t.Errorf("PostWebhook = %v, answers %v; want true, %v", ok, got, want)
	}
	if len(slices.Compact(slices.Clone(sids))) != 1 || sids[0] == "" {
		t.Errorf("MessageSids %v: want one, posted again", sids)
	}

	// Nobody listening: a connection error, then the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got = nil
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if scenario.PostWebhook(ctx, tw, dead.URL+scenario.WebhookPath, 1, func(ok bool, answer string) { got = append(got, answer) }) {
		t.Error("PostWebhook to nobody succeeded")
	}
	if len(got) == 0 || slices.ContainsFunc(got, func(a string) bool { return a != "conn-error" }) {
		t.Errorf("answers %v, want conn-error each time", got)
	}
}

func TestSettleDeadline(t *testing.T) {
	type counts struct{ n int }
	var events []string
	settled := scenario.Settle(0, scenario.Progress[counts]{
		Refresh: func() (counts, bool) { return counts{3}, false },
		Pending: func() (float64, bool) { return 1, true },
		Clean:   func() bool { return true },
		Event:   func(format string, args ...any) { events = append(events, fmt.Sprintf(format, args...)) },
	})
	want := "deadline: not settled after 0s (bus pending 1, known true; {n:3})"
	if settled || !slices.Equal(events, []string{want}) {
		t.Errorf("Settle = %v, events %q; want false, %q", settled, events, want)
	}
}
