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
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/sandbox"
	"github.com/xmppgw/xmppgw/internal/bustest"
)

const (
	sender  = "alice@localhost/res"
	contact = "+15551234567"
)

// recordingHost is the gateway side, recording what the adapter hands it,
// with errors to answer Deliver and Report with (gatewaytest.Host, which the
// feature tests use, has none).
type recordingHost struct {
	deliverErr, reportErr error

	mu        sync.Mutex
	delivered []gateways.Inbound
	reports   []gateways.Status
	others    []any // reactions, retractions, markers, typing
}

var _ gateways.Host = (*recordingHost)(nil)

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

func (h *recordingHost) other(v any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.others = append(h.others, v)
	return nil
}

func (h *recordingHost) React(_ context.Context, r gateways.InboundReaction) error {
	return h.other(r)
}

func (h *recordingHost) Retract(_ context.Context, r gateways.InboundRetraction) error {
	return h.other(r)
}

func (h *recordingHost) Mark(_ context.Context, m gateways.InboundMarker) error { return h.other(m) }

func (h *recordingHost) Type(_ context.Context, t gateways.InboundTyping) error { return h.other(t) }

// Recent: the sandbox never asks the runner to remember text.
func (h *recordingHost) Recent(context.Context, string, string) ([]gateways.RecentMessage, error) {
	return nil, nil
}

func (h *recordingHost) gotOthers() []any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.others)
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
			sent, err := a.Send(t.Context(), tt.out)
			if err != nil {
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
			// The user's message is SBM<h>, its echo SB<h>.
			if sum := strings.TrimPrefix(d.ProviderID, "SB"); !slices.Equal(sent.IDs, []string{"SBM" + sum}) || sent.Text != "" {
				t.Errorf("Send = %+v, want IDs [SBM%s] (the echo's hash) and no text to remember", sent, sum)
			}
			if d.Replace != "" || d.ReplyTo != "" || d.ReplyQuote != "" {
				t.Errorf("echo of a plain message: replace %q reply to %q quote %q, want none", d.Replace, d.ReplyTo, d.ReplyQuote)
			}
			if o := h.gotOthers(); len(o) != 0 {
				t.Errorf("a plain Send handed the host %+v", o)
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
		if _, err := a.Send(t.Context(), out); err != nil {
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
			_, err := a.Send(t.Context(), gateways.Outbound{ID: "m1", From: sender, To: to, Body: "hi", Receipt: true, Attempt: 1})
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
	if _, err := a.Send(t.Context(), out); !errors.Is(err, gateways.ErrNotConnected) {
		t.Errorf("Send before Start = %v, want ErrNotConnected", err)
	}

	h := &recordingHost{}
	if err := a.Start(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(t.Context(), out); err != nil {
		t.Errorf("Send after Start = %v", err)
	}
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(t.Context(), out); !errors.Is(err, gateways.ErrNotConnected) {
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
			_, err := a.Send(t.Context(), gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Receipt: tt.receipt, Attempt: 1})
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
			if _, err := a.Send(t.Context(), out); err != nil {
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

// The features: the sandbox declares all six, and its contacts answer
// each in kind. Network ids: the user's message is SBM<h>, its echo SB<h>.

func TestDeclaresEveryFeature(t *testing.T) {
	a, err := sandbox.New(gateways.Params{Name: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	want := gateways.Features{Corrections: true, Replies: true, Reactions: true, Retractions: true, Markers: true, Typing: true}
	if got := gateways.FeaturesOf(a); got != want {
		t.Errorf("FeaturesOf(sandbox) = %+v, want %+v", got, want)
	}
}

// featureHost starts a sandbox on a gatewaytest.Host.
func featureHost(t *testing.T) (*sandbox.Adapter, *gatewaytest.Host) {
	t.Helper()
	h := gatewaytest.NewHost()
	return started(t, h).(*sandbox.Adapter), h
}

// sendOne sends a message and returns its network id and its echo's.
func sendOne(t *testing.T, a *sandbox.Adapter, h *gatewaytest.Host, id, body string) (sent, echo string) {
	t.Helper()
	s, err := a.Send(t.Context(), gateways.Outbound{ID: id, From: sender, To: contact, Body: body, Attempt: 1})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(s.IDs) != 1 || !strings.HasPrefix(s.IDs[0], "SBM") {
		t.Fatalf("Send = %+v, want one id SBM…", s)
	}
	sum := strings.TrimPrefix(s.IDs[0], "SBM")
	if sum == "" {
		t.Fatalf("Send = %+v: SBM without a hash", s)
	}
	d := h.Delivered()
	if len(d) == 0 || d[len(d)-1].Body != "echo: "+body {
		t.Fatalf("no echo of %q: delivered %+v", body, d)
	}
	if got := d[len(d)-1].ProviderID; got != "SB"+sum {
		t.Fatalf("echo ProviderID = %q, want SB%s (the hash of Send's id)", got, sum)
	}
	return s.IDs[0], "SB" + sum
}

func TestSentIDs(t *testing.T) {
	a, h := featureHost(t)
	sent, echo := sendOne(t, a, h, "m1", "hi")
	// A retry is the same message: the same id, which the runner records.
	s, err := a.Send(t.Context(), gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Attempt: 2})
	if err != nil || !slices.Equal(s.IDs, []string{sent}) {
		t.Errorf("retry: Send = %+v, %v; want [%s]", s, err, sent)
	}
	other, otherEcho := sendOne(t, a, h, "m2", "hi")
	if other == sent || otherEcho == echo {
		t.Errorf("two messages got the same ids %s, %s", other, otherEcho)
	}
}

func TestSendReply(t *testing.T) {
	tests := []struct {
		name      string
		to        gateways.Ref
		wantTo    string
		wantQuote string
	}{
		{"to an echo, with its quote", gateways.Ref{ID: "x1", NetworkIDs: []string{"SBabc"}, Text: "echo: hi"}, "SBabc", "echo: hi"},
		{"several network ids: the first", gateways.Ref{ID: "x1", NetworkIDs: []string{"SBabc", "SBdef"}, Text: "q"}, "SBabc", "q"},
		{"no quote", gateways.Ref{ID: "x1", NetworkIDs: []string{"SBabc"}}, "SBabc", ""},
		// The runner has no record: the answer is not a reply.
		{"no network ids", gateways.Ref{ID: "x1", Text: "q"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, h := featureHost(t)
			to := tt.to
			s, err := a.SendReply(t.Context(), gateways.Outbound{ID: "r1", From: sender, To: contact, Body: "yes", Attempt: 1, ReplyTo: &to})
			if err != nil {
				t.Fatalf("SendReply: %v", err)
			}
			d := h.Delivered()
			if len(d) != 1 {
				t.Fatalf("delivered %+v, want one echo", d)
			}
			e := d[0]
			if e.Body != "echo: yes" || e.ReplyTo != tt.wantTo || e.ReplyQuote != tt.wantQuote || e.Replace != "" {
				t.Errorf("echo = body %q reply to %q quote %q replace %q; want %q, %q, %q, none",
					e.Body, e.ReplyTo, e.ReplyQuote, e.Replace, "echo: yes", tt.wantTo, tt.wantQuote)
			}
			if len(s.IDs) != 1 || "SB"+strings.TrimPrefix(s.IDs[0], "SBM") != e.ProviderID {
				t.Errorf("SendReply = %+v, want [SBM<h>] for the echo %s", s, e.ProviderID)
			}
		})
	}
}

func TestEdit(t *testing.T) {
	a, h := featureHost(t)
	sent, echo := sendOne(t, a, h, "m1", "helo")
	s, err := a.Edit(t.Context(), gateways.Edit{
		Outbound: gateways.Outbound{ID: "m1-fix", From: sender, To: contact, Body: "hello", Attempt: 1},
		Target:   gateways.Ref{ID: "m1", NetworkIDs: []string{sent}, Text: "helo"},
	})
	if err != nil {
		t.Fatalf("Edit: %v", err)
	}
	d := h.Delivered()
	e := d[len(d)-1]
	if e.Body != "echo: hello" || e.Replace != echo || e.From != contact || e.To != gateways.BareJID(sender) {
		t.Errorf("echo of the correction = %+v; want body %q replacing %s", e, "echo: hello", echo)
	}
	if len(s.IDs) != 1 || s.IDs[0] == sent || !strings.HasPrefix(s.IDs[0], "SBM") {
		t.Errorf("Edit = %+v, want one new SBM… id", s)
	}

	for _, target := range [][]string{{echo}, {"other"}, nil} {
		t.Run(fmt.Sprintf("target %q", target), func(t *testing.T) {
			before := len(h.Delivered())
			_, err := a.Edit(t.Context(), gateways.Edit{
				Outbound: gateways.Outbound{ID: "m1-fix2", From: sender, To: contact, Body: "x", Attempt: 1},
				Target:   gateways.Ref{ID: "y", NetworkIDs: target},
			})
			// No network id: the sandbox never saw it; another's id: not the user's.
			want := gateways.NotAcceptable
			if len(target) == 0 {
				want = gateways.ItemNotFound
			}
			var ge *gateways.Error
			if !errors.As(err, &ge) || ge.Condition != want || !errors.Is(err, gateways.ErrPermanent) {
				t.Errorf("Edit of %q = %v, want a permanent %s *gateways.Error", target, err, want)
			}
			if n := len(h.Delivered()); n != before {
				t.Errorf("a refused correction delivered %d echoes", n-before)
			}
		})
	}
}

func TestReact(t *testing.T) {
	a, h := featureHost(t)
	sent, echo := sendOne(t, a, h, "m1", "hi")
	sets := []struct {
		target string
		emoji  []string
	}{
		{sent, []string{"👍", "❤️"}},
		{sent, []string{"👍"}},
		{sent, nil}, // all removed
		{echo, []string{"😂"}},
	}
	for i, s := range sets {
		err := a.React(t.Context(), gateways.Reaction{
			From: sender, To: contact, Target: gateways.Ref{ID: "x", NetworkIDs: []string{s.target}},
			Emoji: s.emoji, Key: fmt.Sprint("k", i),
		})
		if err != nil {
			t.Fatalf("React %d (%q on %s): %v", i, s.emoji, s.target, err)
		}
	}
	got := h.Reactions()
	if len(got) != len(sets) {
		t.Fatalf("host got %d reactions, want %d: %+v", len(got), len(sets), got)
	}
	ids := map[string]bool{}
	for i, r := range got {
		if !r.Full || !slices.Equal(r.Emoji, sets[i].emoji) || r.Target != sets[i].target ||
			r.User != gateways.BareJID(sender) || r.Contact != contact {
			t.Errorf("reaction %d = %+v, want the full set %q on %s from %s to %s", i, r, sets[i].emoji, sets[i].target, contact, gateways.BareJID(sender))
		}
		// Distinct, or the bus would drop a later set as a redelivery.
		if r.ProviderID == "" || ids[r.ProviderID] {
			t.Errorf("reaction %d: ProviderID %q is empty or repeated", i, r.ProviderID)
		}
		ids[r.ProviderID] = true
	}

	refused := []struct {
		name string
		r    gateways.Reaction
		cond gateways.Condition
	}{
		{"no network ids", gateways.Reaction{From: sender, To: contact, Target: gateways.Ref{ID: "x"}, Emoji: []string{"👍"}, Key: "k9"}, gateways.ItemNotFound},
		{"not a number", gateways.Reaction{From: sender, To: "12345", Target: gateways.Ref{ID: "x", NetworkIDs: []string{sent}}, Emoji: []string{"👍"}, Key: "k9"}, gateways.JIDMalformed},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := a.React(t.Context(), tt.r)
			var ge *gateways.Error
			if !errors.As(err, &ge) || ge.Condition != tt.cond {
				t.Errorf("React = %v, want a *gateways.Error %s", err, tt.cond)
			}
		})
	}
	if n := len(h.Reactions()); n != len(sets) {
		t.Errorf("refused reactions reached the host: %+v", h.Reactions()[len(sets):])
	}
}

func TestRetract(t *testing.T) {
	a, h := featureHost(t)
	sent, echo := sendOne(t, a, h, "m1", "oops")
	if err := a.Retract(t.Context(), gateways.Retraction{From: sender, To: contact, Target: gateways.Ref{ID: "m1", NetworkIDs: []string{sent}}, Key: "k1"}); err != nil {
		t.Fatalf("Retract: %v", err)
	}
	got := h.Retractions()
	if len(got) != 1 || got[0].Target != echo || got[0].User != gateways.BareJID(sender) || got[0].Contact != contact || got[0].ProviderID == "" {
		t.Fatalf("retractions = %+v, want one of the echo %s", got, echo)
	}
	for _, target := range [][]string{{echo}, {"other"}, nil} {
		err := a.Retract(t.Context(), gateways.Retraction{From: sender, To: contact, Target: gateways.Ref{ID: "y", NetworkIDs: target}, Key: "k2"})
		var ge *gateways.Error
		if !errors.As(err, &ge) || ge.Condition != gateways.NotAcceptable {
			t.Errorf("Retract of %q = %v, want a not-acceptable *gateways.Error", target, err)
		}
	}
	if n := len(h.Retractions()); n != 1 {
		t.Errorf("refused retractions reached the host: %+v", h.Retractions())
	}
}

func TestType(t *testing.T) {
	tests := []struct {
		state string
		want  []string
	}{
		{bus.TypingComposing, []string{bus.TypingComposing, bus.TypingActive}},
		{bus.TypingPaused, nil},
		{bus.TypingActive, nil},
		{bus.TypingGone, nil},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			a, h := featureHost(t)
			if err := a.Type(t.Context(), gateways.Typing{From: sender, To: contact, State: tt.state}); err != nil {
				t.Fatalf("Type: %v", err)
			}
			var got []string
			for _, x := range h.Typing() {
				got = append(got, x.State)
				if x.User != gateways.BareJID(sender) || x.Contact != contact {
					t.Errorf("chat state %+v, want from %s to %s", x, contact, gateways.BareJID(sender))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("the contact answered %q with %q, want %q", tt.state, got, tt.want)
			}
		})
	}
}

func TestMark(t *testing.T) {
	tests := []struct {
		name   string
		state  string
		target func(sent, echo string) []string
		want   func(sent, echo string) string // "" for no marker
	}{
		{"displayed on the echo", bus.MarkerDisplayed, func(_, echo string) []string { return []string{echo} }, func(sent, _ string) string { return sent }},
		{"received on the echo", bus.MarkerReceived, func(_, echo string) []string { return []string{echo} }, func(sent, _ string) string { return sent }},
		{"on the user's own message", bus.MarkerDisplayed, func(sent, _ string) []string { return []string{sent} }, nil},
		{"on another network's id", bus.MarkerDisplayed, func(string, string) []string { return []string{"other"} }, nil},
		{"no network ids", bus.MarkerDisplayed, func(string, string) []string { return nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, h := featureHost(t)
			sent, echo := sendOne(t, a, h, "m1", "hi")
			m := gateways.Marker{From: sender, To: contact, State: tt.state, Target: gateways.Ref{ID: "x", NetworkIDs: tt.target(sent, echo)}}
			if err := a.Mark(t.Context(), m); err != nil {
				t.Fatalf("Mark: %v", err)
			}
			got := h.Markers()
			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("a marker on a non-echo answered with %+v", got)
				}
				return
			}
			want := gateways.InboundMarker{User: gateways.BareJID(sender), Contact: contact, State: tt.state, Target: tt.want(sent, echo)}
			if len(got) != 1 || got[0] != want {
				t.Errorf("markers = %+v, want [%+v]", got, want)
			}
		})
	}
}
