package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/sandbox"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

const (
	sender  = "alice@localhost/res"
	contact = "+15551234567"
)

// recordingHost is the gateway side, recording what the adapter hands it.
type recordingHost struct {
	deliverErr, reportErr error

	mu        sync.Mutex
	delivered []gateways.Inbound
	reports   []gateways.Status
}

func (h *recordingHost) Deliver(_ context.Context, m gateways.Inbound) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered = append(h.delivered, m)
	return h.deliverErr
}

// Occupant: the adapter declares no rooms, so it must never call this.
func (h *recordingHost) Occupant(context.Context, gateways.Occupant) error {
	panic("Occupant called by an adapter without rooms")
}

func (h *recordingHost) Report(_ context.Context, s gateways.Status) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, s)
	return h.reportErr
}

func (h *recordingHost) got() ([]gateways.Inbound, []gateways.Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.delivered), slices.Clone(h.reports)
}

func started(t *testing.T, h gateways.Host) gateways.Adapter {
	t.Helper()
	a, err := sandbox.New(gateways.Params{Name: "sandbox", Domain: "sms.localhost"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := a.Start(t.Context(), h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return a
}

func TestSendEchoes(t *testing.T) {
	media := []gateways.Media{{URL: "https://upload.example/cat.jpg", Type: "image/jpeg", Size: 1234}}
	tests := []struct {
		name string
		out  gateways.Outbound
		// what the contact answers
		wantTo string
	}{
		{"text", gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Attempt: 1}, "alice@localhost"},
		{"receipt requested", gateways.Outbound{ID: "m2", From: sender, To: contact, Body: "hi", Receipt: true, Attempt: 1}, "alice@localhost"},
		{"media and thread", gateways.Outbound{ID: "m3", From: sender, To: "+447700900123", Body: "look", Media: media, Thread: "th1", Attempt: 1}, "alice@localhost"},
		{"bare sender", gateways.Outbound{ID: "m4", From: "bob@localhost", To: contact, Body: "yo", Attempt: 1}, "bob@localhost"},
		{"empty body", gateways.Outbound{ID: "m5", From: sender, To: contact, Media: media, Attempt: 1}, "alice@localhost"},
		{"shortest number", gateways.Outbound{ID: "m6", From: sender, To: "+1234567", Body: "x", Attempt: 1}, "alice@localhost"},
		{"longest number", gateways.Outbound{ID: "m7", From: sender, To: "+123456789012345", Body: "x", Attempt: 1}, "alice@localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recordingHost{}
			a := started(t, h)
			if err := a.Send(t.Context(), tt.out); err != nil {
				t.Fatalf("Send: %v", err)
			}
			delivered, reports := h.got()

			if len(delivered) != 1 {
				t.Fatalf("Deliver called %d times, want 1", len(delivered))
			}
			d := delivered[0]
			if d.From != tt.out.To || d.To != tt.wantTo || d.Body != "echo: "+tt.out.Body || d.Thread != tt.out.Thread {
				t.Errorf("reply = from %q to %q body %q thread %q; want from %q to %q body %q thread %q",
					d.From, d.To, d.Body, d.Thread, tt.out.To, tt.wantTo, "echo: "+tt.out.Body, tt.out.Thread)
			}
			if !slices.Equal(d.Media, tt.out.Media) {
				t.Errorf("reply media = %+v, want %+v", d.Media, tt.out.Media)
			}
			if !strings.HasPrefix(d.ProviderID, "SB") || len(d.ProviderID) < 10 {
				t.Errorf("reply ProviderID = %q, want a stable sandbox id", d.ProviderID)
			}

			if !tt.out.Receipt {
				if len(reports) != 0 {
					t.Errorf("Report called without a receipt request: %+v", reports)
				}
				return
			}
			want := gateways.Status{Ref: tt.out.ID, User: tt.out.From, Contact: tt.out.To, State: bus.StateDelivered}
			if len(reports) != 1 || reports[0] != want {
				t.Errorf("reports = %+v, want [%+v]", reports, want)
			}
		})
	}
}

// A retry of a message whose reply was already stored must produce the same
// ProviderID, so that the bus stores the reply once.
func TestReplyIDIsStable(t *testing.T) {
	h := &recordingHost{}
	a := started(t, h)
	send := func(out gateways.Outbound) string {
		t.Helper()
		if err := a.Send(t.Context(), out); err != nil {
			t.Fatalf("Send(%+v): %v", out, err)
		}
		delivered, _ := h.got()
		return delivered[len(delivered)-1].ProviderID
	}
	first := send(gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Attempt: 1})
	tests := []struct {
		name string
		out  gateways.Outbound
		same bool
	}{
		{"retry", gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Attempt: 2}, true},
		{"third attempt", gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Attempt: 3}, true},
		{"another message", gateways.Outbound{ID: "m2", From: sender, To: contact, Body: "hi", Attempt: 1}, false},
		{"same id from another resource", gateways.Outbound{ID: "m1", From: "alice@localhost/other", To: contact, Body: "hi", Attempt: 1}, false},
		{"same id from another user", gateways.Outbound{ID: "m1", From: "bob@localhost/res", To: contact, Body: "hi", Attempt: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := send(tt.out); (got == first) != tt.same {
				t.Errorf("ProviderID %q vs first %q: same = %v, want %v", got, first, got == first, tt.same)
			}
		})
	}
}

func TestSendRejectsMalformedNumbers(t *testing.T) {
	for _, to := range []string{
		"12345",
		"+0123456789",
		"alice",
		"+1555abc4567",
		"",
		"+",
		"+123456",           // six digits: too short
		"+1234567890123456", // sixteen digits: too long
		"15551234567",       // no +
		"0015551234567",     // international prefix instead of +
		"+1 555 123 4567",
		" +15551234567",
		"+15551234567\n",
		"++15551234567",
	} {
		t.Run(fmt.Sprintf("%q", to), func(t *testing.T) {
			h := &recordingHost{}
			a := started(t, h)
			err := a.Send(t.Context(), gateways.Outbound{ID: "m1", From: sender, To: to, Body: "hi", Receipt: true, Attempt: 1})
			if !errors.Is(err, gateways.ErrPermanent) {
				t.Fatalf("Send to %q = %v, want a permanent error", to, err)
			}
			var ge *gateways.Error
			if !errors.As(err, &ge) {
				t.Fatalf("Send to %q = %T, want a *gateways.Error", to, err)
			}
			if ge.Condition != gateways.JIDMalformed {
				t.Errorf("condition = %q, want %q", ge.Condition, gateways.JIDMalformed)
			}
			if !strings.Contains(ge.Text, fmt.Sprintf("%q", to)) || !strings.Contains(ge.Text, "E.164") {
				t.Errorf("text %q should name the address and the expected form", ge.Text)
			}
			if d, r := h.got(); len(d) != 0 || len(r) != 0 {
				t.Errorf("host got %d deliveries and %d reports for a refused message", len(d), len(r))
			}
		})
	}
}

func TestSendWhenNotStarted(t *testing.T) {
	out := gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Attempt: 1}
	a, err := sandbox.New(gateways.Params{Name: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	// Stop before any Start is safe.
	if err := a.Stop(t.Context()); err != nil {
		t.Errorf("Stop before Start = %v", err)
	}
	if err := a.Send(t.Context(), out); !errors.Is(err, gateways.ErrNotConnected) {
		t.Errorf("Send before Start = %v, want ErrNotConnected", err)
	}

	h := &recordingHost{}
	if err := a.Start(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(t.Context(), out); err != nil {
		t.Errorf("Send after Start = %v", err)
	}
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(t.Context(), out); !errors.Is(err, gateways.ErrNotConnected) {
		t.Errorf("Send after Stop = %v, want ErrNotConnected", err)
	}
	if errors.Is(gateways.ErrNotConnected, gateways.ErrPermanent) {
		t.Error("ErrNotConnected must be transient so the runner retries")
	}
	if d, _ := h.got(); len(d) != 1 {
		t.Errorf("host got %d deliveries, want 1 (only while started)", len(d))
	}
}

// Errors from the host reach the runner, which retries the send.
func TestSendReturnsHostErrors(t *testing.T) {
	errStore := errors.New("bus unavailable")
	tests := []struct {
		name    string
		host    *recordingHost
		receipt bool
	}{
		{"deliver fails", &recordingHost{deliverErr: errStore}, false},
		{"report fails", &recordingHost{reportErr: errStore}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := started(t, tt.host)
			err := a.Send(t.Context(), gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Receipt: tt.receipt, Attempt: 1})
			if !errors.Is(err, errStore) {
				t.Errorf("Send = %v, want %v", err, errStore)
			}
			if errors.Is(err, gateways.ErrPermanent) {
				t.Errorf("Send = %v is permanent; a storage failure must be retried", err)
			}
		})
	}
}

func TestSendConcurrently(t *testing.T) {
	h := &recordingHost{}
	a := started(t, h)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			out := gateways.Outbound{ID: fmt.Sprint("m", i), From: sender, To: contact, Body: "hi", Receipt: i%2 == 0, Attempt: 1}
			if err := a.Send(t.Context(), out); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()
	if d, r := h.got(); len(d) != 20 || len(r) != 10 {
		t.Errorf("host got %d deliveries and %d reports, want 20 and 10", len(d), len(r))
	}
}

func TestRegistered(t *testing.T) {
	info, ok := gateways.Lookup("sandbox")
	if !ok {
		t.Fatal(`adapter "sandbox" is not registered`)
	}
	if info.Type != "sms" || info.ContactType != "sms" || info.Name == "" {
		t.Errorf("identity = type %q, contact type %q, name %q", info.Type, info.ContactType, info.Name)
	}
	if !info.Capabilities.Media || !info.Capabilities.Receipts {
		t.Errorf("capabilities = %+v, want media and receipts", info.Capabilities)
	}
	if info.NewConfig != nil {
		t.Error("sandbox takes no configuration, but NewConfig is set")
	}
	a, err := info.New(gateways.Params{Name: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(*sandbox.Adapter); !ok {
		t.Errorf("New returned %T", a)
	}
}

// TestWithRunner runs the sandbox behind a real Runner and embedded bus, as
// xmppgw does: an outbound message comes back as a status and an echo.
func TestWithRunner(t *testing.T) {
	const gw = "sandbox"
	ctx := t.Context()
	b := bustest.Open(t)
	info, _ := gateways.Lookup("sandbox")
	a, err := info.New(gateways.Params{Name: gw})
	if err != nil {
		t.Fatal(err)
	}
	r, err := gateways.NewRunner(gateways.RunnerOptions{Name: gw, Bus: b, Adapter: a, Info: info})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(gateways.ShutdownGrace + 10*time.Second):
			t.Error("Run did not return")
		}
	})

	env := &bus.Envelope{
		Kind: bus.KindMessage, ID: nuid.Next(), Gateway: gw, Time: time.Now().UTC(),
		User: sender, Contact: contact,
		Message: &bus.Message{ID: "m1", Body: "hi", Receipt: true},
	}
	if _, err := b.Publish(ctx, bus.OutSubject(gw), env, "out:"+sender+"|m1"); err != nil {
		t.Fatal(err)
	}

	cons, err := b.Consumer(ctx, bus.ConsumerConfig{Stream: bus.StreamIn, Name: bus.ComponentConsumer(gw), Subject: bus.InSubject(gw)})
	if err != nil {
		t.Fatal(err)
	}
	var got []*bus.Envelope
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Until(deadline)))
		if err != nil {
			t.Fatalf("waiting for the echo: %v (have %d envelopes)", err, len(got))
		}
		e, err := bus.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		if err := msg.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 {
		t.Fatalf("got %d envelopes, want a status and an echo", len(got))
	}
	st, echo := got[0], got[1]
	if st.Kind != bus.KindStatus || st.Status.Ref != "m1" || st.Status.State != bus.StateDelivered || st.User != sender {
		t.Errorf("first envelope = %+v (status %+v), want delivered for m1 to %s", st, st.Status, sender)
	}
	if echo.Kind != bus.KindMessage || echo.User != "alice@localhost" || echo.Contact != contact || echo.Message.Body != "echo: hi" {
		t.Errorf("second envelope = %+v (message %+v), want the echo to alice@localhost", echo, echo.Message)
	}
}
