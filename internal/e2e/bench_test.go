package e2e_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// BenchmarkRoundTripProsody measures, through a real Prosody and the real
// xmppgw process (built without -race when benchmarks run):
//
//   - rtt-p50-ms / rtt-p99-ms: one message out to the sandbox and its echo
//     back to the client, sequentially (no pipelining);
//   - start-to-ready-ms: exec of `xmppgw run` until /readyz answers 200;
//   - idle-rss-MB: resident memory of the idle process after start.
func BenchmarkRoundTripProsody(b *testing.B) {
	srv := xmpptest.StartProsody(b, xmpptest.Options{Components: map[string]string{domain: "secret"}})
	start := time.Now()
	g := startGateway(b, sandboxConfig(srv.ComponentAddr(), domain, "secret"))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	ready := time.Since(start)
	rss := rssMB(b, g.cmd.Process.Pid)
	alice := xmpptest.Login(b, srv, "alice", "password")

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Sprintf("bench %d", i)
		t0 := time.Now()
		alice.SendChat(b, contact, body)
		alice.WaitStanza(b, wait, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.Body == "echo: "+body })
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "rtt-p50-ms")
	b.ReportMetric(pct(0.99), "rtt-p99-ms")
	b.ReportMetric(float64(ready.Milliseconds()), "start-to-ready-ms")
	b.ReportMetric(rss, "idle-rss-MB")
}

func rssMB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkTwilioProsody measures the SMS paths through a real Prosody, the
// real gateway and the fake Twilio on loopback, one message at a time:
//
//   - out-p50-ms / out-p99-ms: alice's stanza leaves the client until the
//     fake Twilio has accepted the create call;
//   - in-p50-ms / in-p99-ms: a signed webhook is posted until alice's client
//     has the message.
func BenchmarkTwilioProsody(b *testing.B) {
	srv := xmpptest.StartProsody(b, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw := twiliotest.Start(b, accountSID, authToken)
	cfg := strings.Replace(twilioConfig(srv.ComponentAddr(), tw.URL, "localhost"), "mps: 4", "mps: 100000", 1)
	g := startGateway(b, cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(b, srv, "alice", "password")
	hook := g.httpURL + "/twilio/sms/sms"

	out := make([]time.Duration, 0, b.N)
	in := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		alice.SendChat(b, friendJID, fmt.Sprintf("out %d", i))
		// The fake stamps each message when it accepts it; waiting for it
		// polls, so the wait itself would add the poll interval.
		m := tw.WaitMessages(b, i+1, wait)[i]
		out = append(out, m.Created.Sub(t0))

		body := fmt.Sprintf("in %d", i)
		t0 = time.Now()
		tw.PostWebhook(b, hook, tw.InboundSMS(friend, aliceNum, body))
		alice.WaitStanza(b, wait, func(s xmpptest.Stanza) bool { return s.Body == body })
		in = append(in, time.Since(t0))
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"out", out}, {"in", in}} {
		sort.Slice(m.d, func(i, j int) bool { return m.d[i] < m.d[j] })
		at := func(p float64) float64 {
			return float64(m.d[min(len(m.d)-1, int(p*float64(len(m.d))))].Microseconds()) / 1000
		}
		b.ReportMetric(at(0.50), m.name+"-p50-ms")
		b.ReportMetric(at(0.99), m.name+"-p99-ms")
	}
}

// BenchmarkInboundFlood posts b.N signed webhooks from 8 concurrent posters
// and reports how many messages per second reach the XMPP client.
func BenchmarkInboundFlood(b *testing.B) {
	srv := xmpptest.StartProsody(b, xmpptest.Options{Components: map[string]string{smsDomain: "secret"}})
	tw := twiliotest.Start(b, accountSID, authToken)
	g := startGateway(b, twilioConfig(srv.ComponentAddr(), tw.URL, "localhost"))
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, wait)
	alice := xmpptest.Login(b, srv, "alice", "password")
	hook := g.httpURL + "/twilio/sms/sms"
	params := make([]url.Values, b.N)
	for i := range params {
		params[i] = tw.InboundSMS(friend, aliceNum, fmt.Sprintf("flood %d", i))
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				sig := twiliotest.Sign(authToken, hook, params[i])
				if code, _, err := twiliotest.PostForm(context.Background(), hook, sig, params[i]); err != nil || code != 200 {
					b.Errorf("webhook %d: %d %v", i, code, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	count := func() int {
		n := 0
		for _, raw := range alice.Stanzas() {
			if strings.Contains(raw, "<body>flood ") {
				n++
			}
		}
		return n
	}
	if !poll(time.Minute, func() bool { return count() >= b.N }) {
		_, metrics, _ := g.get("/metrics")
		var lines []string
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "xmppgw_") {
				lines = append(lines, l)
			}
		}
		b.Fatalf("%d of %d messages arrived; gateway metrics:\n%s", count(), b.N, strings.Join(lines, "\n"))
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	if n := count(); n != b.N {
		b.Errorf("%d messages arrived, want %d", n, b.N)
	}
}

// BenchmarkProviderConcurrency: with a provider that takes 50 ms per
// request, throughput approaches max_concurrency / 50 ms.
//
//   - msgs/s: outbound rate through the gateway to the fake Twilio;
//   - of-bound: that rate over max_concurrency / latency (1.0 is the bound).
func BenchmarkProviderConcurrency(b *testing.B) {
	const maxConc, latency = 16, 50 * time.Millisecond
	n := max(b.N, 320)
	b.ResetTimer()
	tw, took := concurrencyRun(b, maxConc, maxConc, n, 200, latency)
	b.StopTimer()
	if th := tw.Throttled(); th != 0 {
		b.Fatalf("%d sends refused for concurrency", th)
	}
	rate := float64(n) / took.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(rate/(maxConc/latency.Seconds()), "of-bound")
}

// BenchmarkRegistrations: memory and lookup time of the gateway with many
// registered users, the registrations written into its data directory before
// it starts (as a long-running gateway would have them).
//
//   - rss-MB: resident memory once ready, with the registrations in place;
//   - lookup-p50-ms / lookup-p99-ms: a registered user's XEP-0077 query
//     (the component asks the registrar, which reads the KV bucket).
//
// Run it for two sizes and compare: lookups must not grow with the count.
func BenchmarkRegistrations(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) { benchRegistrations(b, n) })
	}
}

func benchRegistrations(b *testing.B, n int) {
	dir := b.TempDir()
	seedRegistrations(b, filepath.Join(dir, "data"), n)
	srv := xmpptest.StartProsody(b, xmpptest.Options{
		Components: map[string]string{smsDomain: "secret"},
		Users:      map[string]string{"alice": "password"},
	})
	tw := twiliotest.Start(b, accountSID, authToken)
	// No static numbers: alice's registration is one of the n in the bucket.
	cfg := twilioConfig(srv.ComponentAddr(), tw.URL, "localhost")
	cfg = strings.Replace(cfg, fmt.Sprintf("      numbers:\n        \"%s\": alice@localhost\n", aliceNum), "", 1)
	g := startGatewayIn(b, dir, proctest.FreeAddr(b), cfg)
	g.waitHTTP("/readyz", http.StatusOK, `"ready"`, 2*time.Minute)
	rss := rssMB(b, g.cmd.Process.Pid)
	alice := xmpptest.Login(b, srv, "alice", "password")

	iters := max(b.N, 200)
	lat := make([]time.Duration, 0, iters)
	b.ResetTimer()
	for i := range iters {
		id := fmt.Sprintf("lk%d", i)
		t0 := time.Now()
		alice.SendRaw(b, `<iq to='`+smsDomain+`' type='get' id='`+id+`'><query xmlns='jabber:iq:register'/></iq>`)
		st := alice.WaitStanza(b, wait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == id })
		lat = append(lat, time.Since(t0))
		if i == 0 && !strings.Contains(st.Raw, aliceNum) {
			b.Fatalf("alice's registration was not found among %d: %s", n, st.Raw)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(rss, "rss-MB")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "lookup-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "lookup-p99-ms")
}

// seedRegistrations writes n number registrations, alice's among them, in
// the numbers registrar's key layout into the bus in dataDir.
func seedRegistrations(b *testing.B, dataDir string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bb, err := bus.Open(ctx, bus.Options{DataDir: dataDir})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close(context.Background())
	kv, err := bb.JetStream().KeyValue(ctx, bus.BucketRegistrations)
	if err != nil {
		b.Fatal(err)
	}
	put := func(user, number string) error {
		if _, err := kv.Put(ctx, "sms.n."+strings.TrimPrefix(number, "+"), []byte(user)); err != nil {
			return err
		}
		_, err := kv.Put(ctx, "sms.u."+base64.RawURLEncoding.EncodeToString([]byte(user)), []byte(number))
		return err
	}
	if err := put("alice@localhost", aliceNum); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Value
	const workers = 16
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n-1; i += workers {
				if err := put(fmt.Sprintf("user%d@example.net", i), fmt.Sprintf("+1444%07d", i)); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}
