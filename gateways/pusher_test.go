package gateways_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

// pushAdapter is a scriptAdapter that delivers push notifications.
type pushAdapter struct {
	scriptAdapter
	pmu    sync.Mutex
	pushes []gateways.Push
	fail   func(p gateways.Push) error
}

var _ gateways.Pusher = (*pushAdapter)(nil)

func (a *pushAdapter) Push(_ context.Context, p gateways.Push) error {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	a.pushes = append(a.pushes, p)
	if a.fail != nil {
		return a.fail(p)
	}
	return nil
}

func (a *pushAdapter) calls() []gateways.Push {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	return append([]gateways.Push(nil), a.pushes...)
}

func publishPush(t *testing.T, b *bus.Bus, node string, p *bus.Push) {
	t.Helper()
	env := &bus.Envelope{Kind: bus.KindPush, ID: nuid.Next(), Gateway: gw, Time: time.Now().UTC(), User: "alice@example.com", Contact: node, Push: p}
	if _, err := b.Publish(t.Context(), bus.OutSubject(gw), env, ""); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// TestRunnerPush hands push envelopes to a Pusher: retried while
// transient, and never answered with an error envelope when given up.
func TestRunnerPush(t *testing.T) {
	t.Parallel()
	b := bustest.Open(t)
	a := &pushAdapter{fail: func(p gateways.Push) error {
		switch {
		case p.Node == "flaky" && p.Attempt < 2:
			return errors.New("503 from the push service")
		case p.Node == "gone":
			return gateways.Reject(gateways.ItemNotFound, "the device is gone")
		case p.Node == "down":
			return errors.New("503 forever")
		}
		return nil
	}}
	o := defaultOptions(b, a)
	r, err := gateways.NewRunner(o)
	if err != nil {
		t.Fatal(err)
	}
	h := runRunner(t, b, &a.scriptAdapter, o, r)
	publishPush(t, b, "n1", &bus.Push{Node: "n1", Count: 1, Sender: "bob@example.com", Body: "hi"})
	publishPush(t, b, "flaky", &bus.Push{Node: "flaky", Count: 1})
	publishPush(t, b, "gone", &bus.Push{Node: "gone", Count: 1})
	publishPush(t, b, "down", &bus.Push{Node: "down", Count: 1})
	h.waitSettled()
	got := map[string][]gateways.Push{}
	for _, p := range a.calls() {
		got[p.Node] = append(got[p.Node], p)
	}
	if p := got["n1"]; len(p) != 1 || p[0].User != "alice@example.com" || p[0].Sender != "bob@example.com" || p[0].Body != "hi" || p[0].Count != 1 || p[0].Key == "" {
		t.Errorf("n1: %+v", p)
	}
	if p := got["flaky"]; len(p) != 2 || p[1].Attempt != 2 || p[0].Key != p[1].Key {
		t.Errorf("flaky: %+v, want two attempts of one envelope", p)
	}
	if p := got["gone"]; len(p) != 1 {
		t.Errorf("gone: %d attempts, want 1 (permanent)", len(p))
	}
	if p := got["down"]; len(p) != 3 {
		t.Errorf("down: %d attempts, want MaxAttempts (3)", len(p))
	}
	if n, err := h.streamMsgs(bus.StreamIn); err != nil || n != 0 {
		t.Errorf("the runner stored %d envelopes for the component (err %v); a push failure tells nobody", n, err)
	}
}

// TestRunnerPushWithoutPusher: an adapter that does not deliver pushes
// settles them without sending anything.
func TestRunnerPushWithoutPusher(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	publishPush(t, h.b, "n1", &bus.Push{Node: "n1"})
	h.waitSettled()
	if len(a.Calls()) != 0 {
		t.Errorf("Send called for a push: %+v", a.Calls())
	}
}
