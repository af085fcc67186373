//go:build cluster

package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/internal/proctest"
)

// TestRolesSplit: a component, two adapter workers and a webhook ingress,
// each its own process, against the cluster. Sandbox and Twilio traffic
// both ways: nothing lost, nothing sent twice, and both workers busy.
func TestRolesSplit(t *testing.T) {
	w := newWorld(t)
	comp := w.start("component", "component")
	workers := []*gw{w.start("adapters-1", "adapters"), w.start("adapters-2", "adapters")}
	ingress := w.start("ingress", "ingress")

	// Every role serves the probes and metrics; readiness is what it runs.
	for _, g := range w.procs {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			if code, body, err := g.get(path); err != nil || code != 200 {
				t.Errorf("%s %s: %d %v %.200s", g.name, path, code, err, body)
			}
		}
	}
	if v, _ := comp.metric("xmppgw_component_active"); v != 2 {
		t.Errorf("component: xmppgw_component_active sums to %v, want 2 (both gateways)", v)
	}
	if code, _, _ := comp.get("/twilio/sms/sms"); code != 404 {
		t.Errorf("the component process serves webhooks: %d", code)
	}

	tr := newTraffic(w, true)
	tr.start()
	r := tr.finish("roles split")

	var sent []float64
	total := 0.0
	for _, g := range workers {
		v, _ := g.metric("xmppgw_messages_total", `direction="out"`, `result="sent"`)
		sent = append(sent, v)
		total += v
	}
	tr.event("outbound sends by worker: %v", sent)
	for i, v := range sent {
		if v == 0 {
			t.Errorf("worker %s sent nothing: the two do not share the work (%v)", workers[i].name, sent)
		}
	}
	if want := float64(r[0].delivered + r[2].delivered); total != want {
		t.Errorf("the workers counted %v sends, want %v (Twilio %d + sandbox %d)", total, want, r[0].delivered, r[2].delivered)
	}
	for _, g := range []*gw{comp, ingress} {
		if v, _ := g.metric("xmppgw_messages_total", `direction="out"`, `result="sent"`); v != 0 {
			t.Errorf("%s sent %v outbound messages: only workers consume the outbound stream", g.name, v)
		}
	}
	results.note("roles split", fmt.Sprintf("outbound sends by the two workers: %v", sent))
}

// TestStandbyFailover: two component processes for the domains; the active
// one is killed (kill -9) in the middle of the traffic and the standby,
// whose lease attempts find the dead one's entry expired, connects.
func TestStandbyFailover(t *testing.T) {
	w := newWorld(t)
	active := w.start("component-a", "component")
	standby := w.start("component-b", "component")
	if _, body, err := standby.waitReady(10*time.Second, `"standby"`); err != nil || !strings.Contains(body, "another process holds the component lease") {
		t.Fatalf("second component: want 200 standby, got %q %v", body, err)
	}
	w.start("adapters", "adapters")
	w.start("ingress", "ingress")
	if v, _ := standby.metric("xmppgw_component_active"); v != 0 {
		t.Errorf("standby: xmppgw_component_active sums to %v, want 0", v)
	}

	tr := newTraffic(w, false)
	tr.start()
	q := tr.n / 4
	tr.waitFor("a quarter of the traffic", time.Minute, func(c counts) bool { return c.outDelivered >= q && c.inReceived >= q })
	w.tap.MarkAbrupt()
	killed := time.Now()
	if err := active.Kill(); err != nil {
		t.Fatal(err)
	}
	tr.event("kill -9 of the active component")
	d, _, err := standby.waitReady(15*time.Second, `"ready"`)
	if err != nil {
		t.Fatal(err)
	}
	failover := time.Since(killed)
	tr.event("standby ready (both streams up) %v after the kill (readyz polled every 10 ms)", failover.Round(time.Millisecond))
	if failover > 5*time.Second {
		t.Errorf("failover took %v, want within 5 s (lease TTL %v)", failover, bus.LeaseTTL)
	}
	if v, _ := standby.metric("xmppgw_component_active"); v != 2 {
		t.Errorf("new active: xmppgw_component_active sums to %v, want 2", v)
	}
	_ = d
	tr.finish("standby failover (kill -9)", fmt.Sprintf("failover %v", failover.Round(10*time.Millisecond)))
	results.measure("component failover after kill -9 (standby's both streams up)", failover)
}

// TestNATSNodeKilled: a node is killed (kill -9) mid-run and stays down;
// two nodes keep the quorum.
//
//   - "streams' leader": the node leads the message streams and their
//     consumers, not the lease bucket: the component keeps its stream,
//     publishes wait for the new leaders.
//   - "every leader": the node leads the lease bucket too. The holder
//     cannot renew during the election and gives the lease up (fencing),
//     closing its stream; Prosody bounces what is sent meanwhile, and the
//     component connects again once a leader is elected.
func TestNATSNodeKilled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lease bool // the victim leads the lease bucket too
	}{
		{"streams' leader", false},
		{"every leader", true},
	} {
		t.Run(tc.name, func(t *testing.T) { natsNodeKilled(t, tc.name, tc.lease) })
	}
}

func natsNodeKilled(t *testing.T, name string, lease bool) {
	w := newWorld(t)
	comp := w.start("component", "component")
	w.start("adapters", "adapters")
	w.start("ingress", "ingress")
	victim, keeper := w.nats.Nodes[0], w.nats.Nodes[1]
	for _, s := range []string{bus.StreamOut, bus.StreamIn,
		bus.StreamOut + "/" + bus.AdapterConsumer("sms"), bus.StreamIn + "/" + bus.ComponentConsumer("sms")} {
		w.nats.MoveLeader(t, s, victim.Name)
	}
	leaseLeader := keeper
	if lease {
		leaseLeader = victim
	}
	w.nats.MoveLeader(t, "KV_"+bus.BucketLeases, leaseLeader.Name)

	tr := newTraffic(w, false)
	tr.start()
	q := tr.n / 4
	tr.waitFor("a quarter of the traffic", time.Minute, func(c counts) bool { return c.outDelivered >= q && c.inReceived >= q })
	c0 := tr.refresh()
	if lease {
		// A stream closed for a lost lease may lose the last stanzas
		// crossing it, as a crash would (XEP-0114 has no acks); the
		// component answers what it still reads with errors, so the
		// window should stay empty.
		w.tap.MarkAbrupt()
	}
	killed := time.Now()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	tr.event("kill -9 of NATS node %s, leader of both streams, their consumers and (%v) the lease bucket (out: %d delivered; in: %d received)",
		victim.Name, lease, c0.outDelivered, c0.inReceived)
	// Flowing again: each direction moves past where it was.
	var outAgain, inAgain time.Duration
	if proctest.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		c := tr.refresh()
		if outAgain == 0 && c.outDelivered > c0.outDelivered+10 {
			outAgain = time.Since(killed)
		}
		if inAgain == 0 && c.inReceived > c0.inReceived+10 {
			inAgain = time.Since(killed)
		}
		return outAgain > 0 && inAgain > 0
	}) {
		tr.event("traffic flows again after the kill: out %v, in %v (new leaders: %s, %s; lease bucket %s)",
			outAgain.Round(time.Millisecond), inAgain.Round(time.Millisecond),
			w.nats.StreamLeader(t, bus.StreamOut), w.nats.StreamLeader(t, bus.StreamIn), w.nats.StreamLeader(t, "KV_"+bus.BucketLeases))
	}
	resumed := max(outAgain, inAgain)
	lost := len(comp.LogLines(func(l string) bool { return strings.Contains(l, "component lease lost") }))
	if lease && lost == 0 {
		tr.event("the component kept its lease through the election")
	}
	if !lease && lost > 0 {
		t.Errorf("the component lost its lease although the lease bucket's leader (%s) lives", keeper.Name)
	}
	scenario := "NATS node killed: " + name
	tr.finish(scenario, fmt.Sprintf("flowing again after %v; component lease lost %d times", resumed.Round(10*time.Millisecond), lost))
	results.measure("outbound flows again after kill -9 of the "+name+" node", outAgain)
	results.measure("inbound flows again after kill -9 of the "+name+" node", inAgain)
}
