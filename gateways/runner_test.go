package gateways_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

const (
	gw      = "sms"
	sender  = "alice@localhost/res"
	contact = "+15551234567"
)

// scriptAdapter stands in for a network: Start and Send answer from a script
// and every call is recorded.
type scriptAdapter struct {
	startErrs []error // Start returns these in turn, then nil
	// send answers the n-th Send call (n from 1). Nil: every send succeeds.
	send func(ctx context.Context, n int, m gateways.Outbound) error

	mu     sync.Mutex
	calls  []gateways.Outbound
	starts int
	stops  int
	host   gateways.Host
}

var _ gateways.Adapter = (*scriptAdapter)(nil)

func (a *scriptAdapter) Start(_ context.Context, h gateways.Host) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.starts++
	if a.starts <= len(a.startErrs) {
		return a.startErrs[a.starts-1]
	}
	a.host = h
	return nil
}

func (a *scriptAdapter) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	a.mu.Lock()
	a.calls = append(a.calls, m)
	n := len(a.calls)
	a.mu.Unlock()
	if a.send == nil {
		return gateways.Sent{}, nil
	}
	return gateways.Sent{}, a.send(ctx, n, m)
}

func (a *scriptAdapter) Stop(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stops++
	a.host = nil
	return nil
}

func (a *scriptAdapter) Calls() []gateways.Outbound {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

func (a *scriptAdapter) Host() gateways.Host {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.host
}

func (a *scriptAdapter) counts() (starts, stops int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.starts, a.stops
}

// failing returns errs for the first calls, then rest for every later one.
func failing(rest error, errs ...error) func(context.Context, int, gateways.Outbound) error {
	return func(_ context.Context, n int, _ gateways.Outbound) error {
		if n <= len(errs) {
			return errs[n-1]
		}
		return rest
	}
}

var errNetwork = errors.New("connection reset by provider")

// checkFor polls f until it returns nil or the deadline passes.
func checkFor(t *testing.T, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", total, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// harness is one Runner on its own embedded bus.
type harness struct {
	t      *testing.T
	b      *bus.Bus
	a      *scriptAdapter
	m      *metrics.Metrics
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	runErr error         // what Run returned; read after done
}

func defaultOptions(b *bus.Bus, a gateways.Adapter) gateways.RunnerOptions {
	return gateways.RunnerOptions{
		Name:        gw,
		Bus:         b,
		Adapter:     a,
		Info:        gateways.Info{ID: "script"},
		Metrics:     metrics.New(),
		Workers:     2,
		MaxAttempts: 3,
		SendTimeout: 5 * time.Second,
		RetryBase:   10 * time.Millisecond,
		RetryMax:    50 * time.Millisecond,
	}
}

func startRunner(t *testing.T, a *scriptAdapter, edit func(*gateways.RunnerOptions)) *harness {
	t.Helper()
	return startRunnerOn(t, bustest.Open(t), a, edit)
}

func startRunnerOn(t *testing.T, b *bus.Bus, a *scriptAdapter, edit func(*gateways.RunnerOptions)) *harness {
	t.Helper()
	o := defaultOptions(b, a)
	if edit != nil {
		edit(&o)
	}
	r, err := gateways.NewRunner(o)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	return runRunner(t, b, a, o, r)
}

// runRunner runs r (made from o) until the test ends.
func runRunner(t *testing.T, b *bus.Bus, a *scriptAdapter, o gateways.RunnerOptions, r *gateways.Runner) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, b: b, a: a, m: o.Metrics, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.runErr = r.Run(ctx)
	}()
	// Registered after the bus' cleanup, so it runs before the bus closes.
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels Run and waits for it to return. The shutdown grace for
// in-flight sends is part of the allowance.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(gateways.ShutdownGrace + 10*time.Second):
		h.t.Fatal("Run did not return after cancel")
	}
	return h.runErr
}

// publish sends an outbound message as the component does.
func (h *harness) publish(user, to string, m *bus.Message) {
	h.t.Helper()
	env := &bus.Envelope{
		Kind:    bus.KindMessage,
		ID:      nuid.Next(),
		Gateway: gw,
		Time:    time.Now().UTC(),
		User:    user,
		Contact: to,
		Message: m,
	}
	if _, err := h.b.Publish(h.t.Context(), bus.OutSubject(gw), env, "out:"+user+"|"+m.ID); err != nil {
		h.t.Fatalf("publish: %v", err)
	}
}

func (h *harness) streamMsgs(stream string) (uint64, error) {
	s, err := h.b.JetStream().Stream(h.t.Context(), stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(h.t.Context())
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// waitSettled waits until every outbound message has been acknowledged or
// terminated: the work queue is empty and the adapter's consumer holds
// nothing. Anything the runner reports is stored before it acks, so after
// this the in stream is complete.
func (h *harness) waitSettled() {
	h.t.Helper()
	checkFor(h.t, 10*time.Second, func() error {
		n, err := h.streamMsgs(bus.StreamOut)
		if err != nil {
			return err
		}
		w, u, err := h.b.Pending(h.t.Context(), bus.StreamOut, bus.AdapterConsumer(gw))
		if err != nil {
			return err
		}
		if n != 0 || w != 0 || u != 0 {
			return fmt.Errorf("out stream holds %d, consumer %d waiting, %d unacked", n, w, u)
		}
		return nil
	})
}

// inbound takes everything the runner has stored for the component.
func (h *harness) inbound() []*bus.Envelope {
	h.t.Helper()
	ctx := h.t.Context()
	cons, err := h.b.Consumer(ctx, bus.ConsumerConfig{
		Stream: bus.StreamIn, Name: bus.ComponentConsumer(gw), Subject: bus.InSubject(gw),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	n, err := h.streamMsgs(bus.StreamIn)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*bus.Envelope
	for uint64(len(out)) < n {
		batch, err := cons.Fetch(int(n)-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			h.t.Fatal(err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			e, err := bus.Decode(msg.Data())
			if err != nil {
				h.t.Fatalf("runner stored an invalid envelope: %v", err)
			}
			out = append(out, e)
			if err := msg.DoubleAck(ctx); err != nil {
				h.t.Fatal(err)
			}
		}
		if got == 0 {
			h.t.Fatalf("fetched %d of %d inbound envelopes: %v", len(out), n, batch.Error())
		}
	}
	return out
}

func (h *harness) counter(dir, result string) float64 {
	h.t.Helper()
	mfs, err := h.m.Registry.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "xmppgw_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["gateway"] == gw && l["direction"] == dir && l["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// startedHost waits until the runner has started a and returns the host
// it was given.
func startedHost(t *testing.T, a *scriptAdapter) gateways.Host {
	t.Helper()
	var host gateways.Host
	checkFor(t, 5*time.Second, func() error {
		if host = a.Host(); host == nil {
			return errors.New("adapter not started")
		}
		return nil
	})
	return host
}

func waitCalls(t *testing.T, a *scriptAdapter, n int) []gateways.Outbound {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		if got := len(a.Calls()); got < n {
			return fmt.Errorf("adapter got %d sends, want %d", got, n)
		}
		return nil
	})
	return a.Calls()
}

func TestRunnerSendSuccess(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi", Thread: "th1", Receipt: true})
	h.waitSettled()

	calls := a.Calls()
	want := gateways.Outbound{ID: "m1", From: sender, To: contact, Body: "hi", Thread: "th1", Receipt: true, Attempt: 1}
	if len(calls) != 1 {
		t.Fatalf("adapter got %d sends, want 1: %+v", len(calls), calls)
	}
	if got := calls[0]; got.ID != want.ID || got.From != want.From || got.To != want.To || got.Body != want.Body ||
		got.Thread != want.Thread || got.Receipt != want.Receipt || got.Attempt != want.Attempt || got.Media != nil {
		t.Errorf("adapter got %+v, want %+v", got, want)
	}
	if in := h.inbound(); len(in) != 0 {
		t.Errorf("runner stored %d inbound envelopes, want none: %+v", len(in), in[0])
	}
	if got := h.counter(metrics.Out, metrics.Sent); got != 1 {
		t.Errorf("sent counter = %v, want 1", got)
	}
}

func TestRunnerRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		errs []error
	}{
		{"plain error", []error{errNetwork, errNetwork}},
		{"not connected", []error{gateways.ErrNotConnected, fmt.Errorf("twilio: %w", gateways.ErrNotConnected)}},
		{"non-permanent *Error", []error{&gateways.Error{Condition: gateways.RecipientUnavailable}, errNetwork}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &scriptAdapter{send: failing(nil, tt.errs...)}
			h := startRunner(t, a, nil)
			h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi"})
			h.waitSettled()

			calls := a.Calls()
			if len(calls) != 3 {
				t.Fatalf("adapter got %d sends, want 3", len(calls))
			}
			for i, c := range calls {
				if c.Attempt != i+1 || c.ID != "m1" || c.Body != "hi" {
					t.Errorf("send %d = %+v, want attempt %d of m1", i+1, c, i+1)
				}
			}
			if in := h.inbound(); len(in) != 0 {
				t.Errorf("runner stored %d envelopes after a successful retry, want none: %+v", len(in), in[0])
			}
			if got := h.counter(metrics.Out, metrics.Retried); got != 2 {
				t.Errorf("retried counter = %v, want 2", got)
			}
			if got := h.counter(metrics.Out, metrics.Sent); got != 1 {
				t.Errorf("sent counter = %v, want 1", got)
			}
		})
	}
}

func TestRunnerReportsPermanentErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		cond     string
		typ      string
		text     string
		code     string
		wantCall bool
	}{
		{"reject", gateways.Reject(gateways.JIDMalformed, "%q is not a number", contact),
			"jid-malformed", "modify", contact + `" is not a number`, "", true},
		{"wrapped reject", fmt.Errorf("twilio: %w", gateways.Reject(gateways.NotAcceptable, "too long")),
			"not-acceptable", "modify", "too long", "", true},
		{"error with provider code", &gateways.Error{Condition: gateways.Forbidden, Text: "recipient opted out", Code: "21610", Permanent: true},
			"forbidden", "auth", "recipient opted out", "21610", true},
		{"cause without text", &gateways.Error{Condition: gateways.ItemNotFound, Permanent: true, Err: errors.New("no such number")},
			"item-not-found", "cancel", "no such number", "", true},
		{"unsupported sentinel", fmt.Errorf("group chats: %w", gateways.ErrUnsupported),
			"feature-not-implemented", "cancel", "group chats", "", true},
		{"permanent sentinel", fmt.Errorf("%w: account suspended", gateways.ErrPermanent),
			"undefined-condition", "cancel", "account suspended", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &scriptAdapter{send: failing(tt.err)}
			h := startRunner(t, a, nil)
			h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi"})
			h.waitSettled()

			if n := len(a.Calls()); n != 1 {
				t.Errorf("adapter got %d sends, want 1 (no retry)", n)
			}
			in := h.inbound()
			if len(in) != 1 {
				t.Fatalf("runner stored %d envelopes, want 1 error", len(in))
			}
			checkError(t, in[0], "m1", tt.cond, tt.typ, tt.text)
			if in[0].Error.Code != tt.code {
				t.Errorf("error code = %q, want %q", in[0].Error.Code, tt.code)
			}
			if got := h.counter(metrics.Out, metrics.Failed); got != 1 {
				t.Errorf("failed counter = %v, want 1", got)
			}
		})
	}
}

func checkError(t *testing.T, e *bus.Envelope, ref, cond, typ, text string) {
	t.Helper()
	if e.Kind != bus.KindError || e.Error == nil {
		t.Fatalf("envelope is %q, want an error: %+v", e.Kind, e)
	}
	if e.Gateway != gw || e.User != sender || e.Contact != contact {
		t.Errorf("error addressed gateway %q user %q contact %q; want %q, %q (the sender's full JID), %q",
			e.Gateway, e.User, e.Contact, gw, sender, contact)
	}
	if e.Error.Ref != ref || e.Error.Condition != cond || e.Error.Type != typ {
		t.Errorf("error = ref %q %s/%s, want ref %q %s/%s", e.Error.Ref, e.Error.Condition, e.Error.Type, ref, cond, typ)
	}
	if !strings.Contains(e.Error.Text, text) {
		t.Errorf("error text %q does not mention %q", e.Error.Text, text)
	}
	if e.Time.IsZero() || e.ID == "" {
		t.Errorf("error envelope without time or id: %+v", e)
	}
}

func TestRunnerGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		send func(context.Context, int, gateways.Outbound) error
		opts func(*gateways.RunnerOptions)
	}{
		{"transient error forever", failing(errNetwork), nil},
		// A Send that hangs is cut off by SendTimeout and counts as an attempt.
		{"send hangs", func(ctx context.Context, _ int, _ gateways.Outbound) error {
			<-ctx.Done()
			return ctx.Err()
		}, func(o *gateways.RunnerOptions) { o.SendTimeout = 20 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &scriptAdapter{send: tt.send}
			h := startRunner(t, a, tt.opts)
			h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi"})
			h.waitSettled()

			calls := a.Calls()
			if len(calls) != 3 {
				t.Errorf("adapter got %d sends, want MaxAttempts = 3", len(calls))
			}
			in := h.inbound()
			if len(in) != 1 {
				t.Fatalf("runner stored %d envelopes, want 1 error", len(in))
			}
			checkError(t, in[0], "m1", "remote-server-timeout", "wait", "3 attempts")
		})
	}
}

func TestRunnerMedia(t *testing.T) {
	t.Parallel()
	media := []bus.Media{{URL: "https://upload.example/cat.jpg", Type: "image/jpeg", Size: 1234}}
	tests := []struct {
		name      string
		canMedia  bool
		body      string
		wantMedia []gateways.Media // nil: stripped
		wantCond  string           // non-empty: refused with this condition, no send
	}{
		{"network with media", true, "https://upload.example/cat.jpg",
			[]gateways.Media{{URL: "https://upload.example/cat.jpg", Type: "image/jpeg", Size: 1234}}, ""},
		{"network with media, media only", true, "",
			[]gateways.Media{{URL: "https://upload.example/cat.jpg", Type: "image/jpeg", Size: 1234}}, ""},
		{"text network strips media", false, "look https://upload.example/cat.jpg", nil, ""},
		{"text network refuses media only", false, "", nil, "feature-not-implemented"},
		{"text network refuses media with blank body", false, " \n\t", nil, "feature-not-implemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &scriptAdapter{}
			h := startRunner(t, a, func(o *gateways.RunnerOptions) {
				o.Info.Capabilities = gateways.Capabilities{Media: tt.canMedia}
			})
			h.publish(sender, contact, &bus.Message{ID: "m1", Body: tt.body, Media: media})
			h.waitSettled()

			calls, in := a.Calls(), h.inbound()
			if tt.wantCond != "" {
				if len(calls) != 0 {
					t.Errorf("adapter got %d sends, want none", len(calls))
				}
				if len(in) != 1 {
					t.Fatalf("runner stored %d envelopes, want 1 error", len(in))
				}
				checkError(t, in[0], "m1", tt.wantCond, "cancel", "attachments")
				return
			}
			if len(in) != 0 {
				t.Errorf("runner stored %d envelopes, want none: %+v", len(in), in[0])
			}
			if len(calls) != 1 {
				t.Fatalf("adapter got %d sends, want 1", len(calls))
			}
			if calls[0].Body != tt.body {
				t.Errorf("body = %q, want %q", calls[0].Body, tt.body)
			}
			if !slices.Equal(calls[0].Media, tt.wantMedia) {
				t.Errorf("media = %+v, want %+v", calls[0].Media, tt.wantMedia)
			}
		})
	}
}

// What the component would never publish must not wedge the queue.
func TestRunnerDropsBadEnvelopes(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	ctx := t.Context()

	if _, err := h.b.JetStream().Publish(ctx, bus.OutSubject(gw), []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	status := &bus.Envelope{
		Kind: bus.KindStatus, ID: nuid.Next(), Gateway: gw, User: sender, Contact: contact,
		Status: &bus.Status{Ref: "m0", State: bus.StateDelivered},
	}
	if _, err := h.b.Publish(ctx, bus.OutSubject(gw), status, ""); err != nil {
		t.Fatal(err)
	}
	h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi"})
	h.waitSettled()

	calls := a.Calls()
	if len(calls) != 1 || calls[0].ID != "m1" {
		t.Errorf("adapter got %+v, want only m1", calls)
	}
	if in := h.inbound(); len(in) != 0 {
		t.Errorf("runner stored %d envelopes, want none", len(in))
	}
}

func TestRunnerKeepsConversationOrder(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, func(o *gateways.RunnerOptions) { o.Workers = 8 })

	type conv struct{ user, contact string }
	convs := []conv{
		{sender, contact},
		{"bob@localhost/laptop", contact},
		{sender, "+15557654321"},
		{"carol@localhost/x", "+447700900123"},
	}
	const n = 50
	for i := range n {
		for _, c := range convs {
			// Stanza ids are unique per sender, as the component's dedup
			// key (sender + id) requires.
			h.publish(c.user, c.contact, &bus.Message{ID: fmt.Sprintf("%s-%02d", c.contact, i), Body: fmt.Sprint(i)})
		}
	}
	calls := waitCalls(t, a, n*len(convs))
	h.waitSettled()

	got := map[conv][]string{}
	for _, c := range calls {
		k := conv{c.From, c.To}
		got[k] = append(got[k], c.ID)
	}
	for _, c := range convs {
		ids := got[c]
		if len(ids) != n {
			t.Errorf("%s → %s: %d sends, want %d", c.user, c.contact, len(ids), n)
			continue
		}
		if !slices.IsSorted(ids) {
			t.Errorf("%s → %s: sent out of order: %v", c.user, c.contact, ids)
		}
	}
}

// TestRunnerRetryHoldsItsConversation: a message retried after a transient
// failure stays at the head of its conversation (a correction must not
// reach the network before the message it corrects), while another
// conversation on the same worker goes on meanwhile.
func TestRunnerRetryHoldsItsConversation(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	a := &scriptAdapter{send: func(ctx context.Context, n int, m gateways.Outbound) error {
		if m.ID == "m1" && m.Attempt < 3 {
			return errNetwork // retried, twice
		}
		if m.ID == "other" {
			once.Do(func() { close(release) })
		}
		return nil
	}}
	// One worker: both conversations share it, so the other one passing
	// shows the worker is not blocked by the retry.
	h := startRunner(t, a, func(o *gateways.RunnerOptions) { o.Workers = 1; o.RetryBase = 200 * time.Millisecond })
	h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi"})
	h.publish(sender, contact, &bus.Message{ID: "m1-fix", Body: "hi!", Replace: "m1"})
	h.publish(sender, contact, &bus.Message{ID: "m2", Body: "and more"})
	h.publish("bob@localhost/laptop", contact, &bus.Message{ID: "other", Body: "meanwhile"})
	select {
	case <-release:
	case <-time.After(10 * time.Second):
		t.Fatal("the other conversation waited behind the retry")
	}
	waitCalls(t, a, 6)
	h.waitSettled()
	var order []string
	for _, c := range a.Calls() {
		if c.From == sender {
			order = append(order, fmt.Sprintf("%s#%d", c.ID, c.Attempt))
		}
	}
	if want := []string{"m1#1", "m1#2", "m1#3", "m1-fix#1", "m2#1"}; !slices.Equal(order, want) {
		t.Errorf("the conversation's sends: %v, want %v (the retried message first, the rest after it)", order, want)
	}
	var otherAt, retriedAt int
	for i, c := range a.Calls() {
		switch {
		case c.ID == "other":
			otherAt = i
		case c.ID == "m1" && c.Attempt == 3:
			retriedAt = i
		}
	}
	if otherAt > retriedAt {
		t.Errorf("the other conversation was sent after the retry (call %d > %d): it waited", otherAt, retriedAt)
	}
}

func TestRunnerStopsCleanly(t *testing.T) {
	b := bustest.Open(t)
	run := func(id string) *scriptAdapter {
		a := &scriptAdapter{}
		h := startRunnerOn(t, b, a, func(o *gateways.RunnerOptions) { o.Workers = 8 })
		h.publish(sender, contact, &bus.Message{ID: id, Body: "hi"})
		h.waitSettled()
		if err := h.stop(); err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
		if starts, stops := a.counts(); starts != 1 || stops != 1 {
			t.Errorf("adapter started %d and stopped %d times, want 1 and 1", starts, stops)
		}
		return a
	}
	// The first run leaves the durable consumer (and its goroutines in the
	// embedded server) behind on purpose; count from there.
	run("m1")
	before := runtime.NumGoroutine()
	run("m2")

	// Goroutines wind down asynchronously after Run returns; allow a little
	// slack for the runtime's and the server's own.
	const slack = 2
	checkFor(t, 5*time.Second, func() error {
		if now := runtime.NumGoroutine(); now > before+slack {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("%d goroutines after Run returned, %d before it started\n%s", now, before, buf)
		}
		return nil
	})
}

// At shutdown, the send in progress and the work queued behind it on the
// worker are finished, in conversation order, within the grace period; none
// is handed back (JetStream would redeliver nak'd messages out of order).
func TestRunnerShutdownFinishesQueuedInOrder(t *testing.T) {
	t.Parallel()
	ids := []string{"m1", "m2", "m3", "m4", "m5", "m6"}
	b := bustest.Open(t)
	sending, release := make(chan struct{}), make(chan struct{})
	stopsDuringSend := -1
	a := &scriptAdapter{}
	a.send = func(_ context.Context, n int, _ gateways.Outbound) error {
		if n == 1 {
			close(sending)
			<-release
			_, stopsDuringSend = a.counts()
		}
		return nil
	}
	h := startRunnerOn(t, b, a, func(o *gateways.RunnerOptions) { o.Workers = 1 })
	for _, id := range ids {
		h.publish(sender, contact, &bus.Message{ID: id, Body: "hi"})
	}
	select {
	case <-sending:
	case <-time.After(10 * time.Second):
		t.Fatal("adapter never got the first message")
	}
	// All have reached the runner.
	checkFor(t, 10*time.Second, func() error {
		w, u, err := b.Pending(t.Context(), bus.StreamOut, bus.AdapterConsumer(gw))
		if err != nil || w != 0 || u != uint64(len(ids)) {
			return fmt.Errorf("consumer: %d waiting, %d unacked (%v); want 0, %d", w, u, err, len(ids))
		}
		return nil
	})

	h.cancel()
	select {
	case <-h.done:
		t.Fatal("Run returned while a send was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := h.stop(); err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
	if stopsDuringSend != 0 {
		t.Errorf("adapter was stopped %d times while a send was in progress", stopsDuringSend)
	}
	var got []string
	for _, c := range a.Calls() {
		got = append(got, c.ID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("adapter got %q during shutdown, want %q in order", got, ids)
	}
	if n, err := h.streamMsgs(bus.StreamOut); err != nil || n != 0 {
		t.Errorf("after shutdown the out stream holds %d (%v), want 0", n, err)
	}
	if n, err := h.streamMsgs(bus.StreamIn); err != nil || n != 0 {
		t.Errorf("after shutdown %d envelopes stored for the sender (%v), want none", n, err)
	}
}

// A send still running when the shutdown grace ends is cut off and left on
// the bus; the sender is not told of a failure that did not happen.
func TestRunnerShutdownGraceCutsOffSend(t *testing.T) {
	t.Parallel()
	b := bustest.Open(t)
	sending := make(chan struct{})
	a := &scriptAdapter{send: func(ctx context.Context, n int, _ gateways.Outbound) error {
		if n == 1 {
			close(sending)
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	h := startRunnerOn(t, b, a, nil)
	h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi"})
	select {
	case <-sending:
	case <-time.After(10 * time.Second):
		t.Fatal("adapter never got m1")
	}
	start := time.Now()
	if err := h.stop(); err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
	if took := time.Since(start); took < gateways.ShutdownGrace/2 {
		t.Errorf("Run returned after %v, before the shutdown grace (%v) was used", took, gateways.ShutdownGrace)
	}
	if n, err := h.streamMsgs(bus.StreamOut); err != nil || n != 1 {
		t.Fatalf("after shutdown the out stream holds %d (%v), want m1 still there", n, err)
	}
	if n, err := h.streamMsgs(bus.StreamIn); err != nil || n != 0 {
		t.Errorf("after shutdown %d envelopes stored for the sender (%v), want none", n, err)
	}

	next := &scriptAdapter{}
	h2 := startRunnerOn(t, b, next, nil)
	h2.waitSettled()
	if calls := next.Calls(); len(calls) != 1 || calls[0].ID != "m1" || calls[0].Attempt != 2 {
		t.Errorf("next runner sent %+v, want m1 once as attempt 2", calls)
	}
}

func TestRunnerRetriesStart(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{startErrs: []error{errNetwork, errNetwork}}
	h := startRunner(t, a, nil)
	h.publish(sender, contact, &bus.Message{ID: "m1", Body: "hi"})
	waitCalls(t, a, 1)
	// Stop is called after each failed Start, so a half-open connection is
	// released before the next try.
	if starts, stops := a.counts(); starts != 3 || stops != 2 {
		t.Errorf("adapter started %d and stopped %d times, want 3 and 2", starts, stops)
	}
	if err := h.stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
	if _, stops := a.counts(); stops != 3 {
		t.Errorf("adapter stopped %d times after Run, want 3", stops)
	}
}

func TestRunnerCancelWhileStarting(t *testing.T) {
	a := &scriptAdapter{startErrs: slices.Repeat([]error{errNetwork}, 1000)}
	h := startRunner(t, a, nil)
	checkFor(t, 5*time.Second, func() error {
		if starts, _ := a.counts(); starts < 2 {
			return fmt.Errorf("%d start attempts", starts)
		}
		return nil
	})
	if err := h.stop(); err != nil {
		t.Errorf("Run = %v after cancel while starting, want nil", err)
	}
}

func TestHostDeliver(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	host := startedHost(t, a)
	ctx := t.Context()

	in := gateways.Inbound{
		ProviderID: "SM0123",
		From:       contact,
		To:         "alice@localhost",
		Body:       "hello from the phone",
		Media:      []gateways.Media{{URL: "https://media.example/1.jpg", Type: "image/jpeg", Size: 99}},
		Thread:     "th1",
	}
	// The network redelivers: the second copy is stored once.
	for range 2 {
		if err := host.Deliver(ctx, in); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	got := h.inbound()
	if len(got) != 1 {
		t.Fatalf("stored %d envelopes, want 1", len(got))
	}
	e := got[0]
	if e.Kind != bus.KindMessage || e.Gateway != gw || e.User != in.To || e.Contact != in.From || e.ID == "" || e.Time.IsZero() {
		t.Errorf("envelope = %+v", e)
	}
	wantMsg := bus.Message{ID: "SM0123", Body: in.Body, Thread: "th1",
		Media: []bus.Media{{URL: "https://media.example/1.jpg", Type: "image/jpeg", Size: 99}}}
	if m := e.Message; m == nil || m.ID != wantMsg.ID || m.Body != wantMsg.Body || m.Thread != wantMsg.Thread ||
		!slices.Equal(m.Media, wantMsg.Media) || m.Receipt {
		t.Errorf("message = %+v, want %+v", e.Message, wantMsg)
	}
	if q, d := h.counter(metrics.In, metrics.Queued), h.counter(metrics.In, metrics.Duplicate); q != 1 || d != 1 {
		t.Errorf("counters queued %v, duplicate %v; want 1, 1", q, d)
	}

	// Without a provider id there is nothing to deduplicate on.
	in.ProviderID = ""
	for range 2 {
		if err := host.Deliver(ctx, in); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if got := h.inbound(); len(got) != 2 {
		t.Errorf("stored %d envelopes without provider id, want 2", len(got))
	}

	// An invalid message is refused rather than stored.
	if err := host.Deliver(ctx, gateways.Inbound{ProviderID: "SM9", From: contact, Body: "no recipient"}); !errors.Is(err, bus.ErrInvalidEnvelope) {
		t.Errorf("Deliver without To = %v, want ErrInvalidEnvelope", err)
	}
}

func TestHostReport(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	host := startedHost(t, a)
	ctx := t.Context()

	sent := gateways.Status{Ref: "m1", Key: "K1", User: sender, Contact: contact, State: bus.StateSent}
	delivered := sent
	delivered.State, delivered.Code, delivered.Reason = bus.StateDelivered, "0", "handset"
	for _, s := range []gateways.Status{sent, sent, delivered, delivered} {
		if err := host.Report(ctx, s); err != nil {
			t.Fatalf("Report: %v", err)
		}
	}
	got := h.inbound()
	if len(got) != 2 {
		t.Fatalf("stored %d status envelopes, want 2 (one per state)", len(got))
	}
	for i, want := range []gateways.Status{sent, delivered} {
		e := got[i]
		if e.Kind != bus.KindStatus || e.User != want.User || e.Contact != want.Contact || e.Status == nil ||
			*e.Status != (bus.Status{Ref: want.Ref, State: want.State, Code: want.Code, Reason: want.Reason}) {
			t.Errorf("envelope %d = %+v (status %+v), want %+v", i, e, e.Status, want)
		}
	}
}

// Clients number stanzas with counters: bob's message "5" failing minutes
// after alice's message "5" failed is another report, not a repeat
// (issue #12: it was deduplicated on st:<ref>:<state> and bob was never
// told). A report is a repeat only for the same bus message.
func TestHostReportSameStanzaIDOtherMessage(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, nil)
	host := startedHost(t, a)
	ctx := t.Context()
	alice := gateways.Status{Ref: "5", Key: "Kalice", User: "alice@localhost/phone", Contact: contact, State: bus.StateFailed, Code: "30003", Reason: "unreachable"}
	bob := alice
	bob.Key, bob.User = "Kbob", "bob@localhost/laptop"
	// alice resends her "5" later: another bus message, another report.
	again := alice
	again.Key = "Kalice2"
	for _, s := range []gateways.Status{alice, bob, alice, again} {
		if err := host.Report(ctx, s); err != nil {
			t.Fatalf("Report: %v", err)
		}
	}
	got := h.inbound()
	var users []string
	for _, e := range got {
		users = append(users, e.User)
	}
	if want := []string{alice.User, bob.User, alice.User}; !slices.Equal(users, want) {
		t.Errorf("status envelopes stored for %v, want %v (alice's repeat dropped, nothing else)", users, want)
	}
}

func TestNewRunnerValidates(t *testing.T) {
	t.Parallel()
	b := bustest.Open(t)
	a := &scriptAdapter{}
	tests := []struct {
		name string
		edit func(*gateways.RunnerOptions)
	}{
		{"no name", func(o *gateways.RunnerOptions) { o.Name = "" }},
		{"no bus", func(o *gateways.RunnerOptions) { o.Bus = nil }},
		{"no adapter", func(o *gateways.RunnerOptions) { o.Adapter = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := defaultOptions(b, a)
			tt.edit(&o)
			if r, err := gateways.NewRunner(o); err == nil {
				t.Errorf("NewRunner = %v, nil; want an error", r)
			}
		})
	}
	// Only the essentials are required; the rest has defaults.
	if _, err := gateways.NewRunner(gateways.RunnerOptions{Name: gw, Bus: b, Adapter: a}); err != nil {
		t.Errorf("NewRunner with defaults: %v", err)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	// Unique per run: the registry is global and -count=N reuses the process.
	id := "runner-test-" + strings.ToLower(nuid.Next())
	newAdapter := func(gateways.Params) (gateways.Adapter, error) { return &scriptAdapter{}, nil }

	gateways.Register(gateways.Info{ID: id, Type: "sms", New: newAdapter})
	info, ok := gateways.Lookup(id)
	if !ok || info.ID != id || info.Type != "sms" {
		t.Errorf("Lookup(%q) = %+v, %v", id, info, ok)
	}
	ids := gateways.IDs()
	if !slices.Contains(ids, id) || !slices.IsSorted(ids) {
		t.Errorf("IDs() = %q, want a sorted list containing %q", ids, id)
	}
	if _, ok := gateways.Lookup(id + "-missing"); ok {
		t.Error("Lookup of an unregistered id succeeded")
	}

	tests := []struct {
		name string
		info gateways.Info
	}{
		{"duplicate", gateways.Info{ID: id, New: newAdapter}},
		{"empty id", gateways.Info{New: newAdapter}},
		{"no constructor", gateways.Info{ID: id + "-nonew"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", tt.info)
				}
			}()
			gateways.Register(tt.info)
		})
	}
	if _, ok := gateways.Lookup(id + "-nonew"); ok {
		t.Error("an adapter without New was registered")
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	cause := errors.New("HTTP 400")
	tests := []struct {
		name      string
		err       error
		permanent bool
		cond      gateways.Condition
		msg       string
	}{
		{"reject", gateways.Reject(gateways.JIDMalformed, "bad %s", "number"), true, gateways.JIDMalformed, "jid-malformed: bad number"},
		{"transient *Error", &gateways.Error{Condition: gateways.ServiceUnavailable, Err: cause}, false, gateways.ServiceUnavailable, "service-unavailable: HTTP 400"},
		{"wrapped permanent", fmt.Errorf("twilio: %w", &gateways.Error{Condition: gateways.Forbidden, Text: "opted out", Permanent: true, Err: cause}),
			true, gateways.Forbidden, "twilio: forbidden: opted out: HTTP 400"},
		{"sentinel", gateways.ErrPermanent, true, "", "permanent failure"},
		{"not connected", gateways.ErrNotConnected, false, "", "not connected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errors.Is(tt.err, gateways.ErrPermanent); got != tt.permanent {
				t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", tt.err, got, tt.permanent)
			}
			if tt.err.Error() != tt.msg {
				t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.msg)
			}
			var ge *gateways.Error
			if errors.As(tt.err, &ge) != (tt.cond != "") {
				t.Fatalf("errors.As(%v, *Error) = %v", tt.err, ge)
			}
			if ge != nil && ge.Condition != tt.cond {
				t.Errorf("condition = %q, want %q", ge.Condition, tt.cond)
			}
		})
	}
	// The cause stays reachable for logs.
	if err := (&gateways.Error{Condition: gateways.BadRequest, Err: cause}); !errors.Is(err, cause) {
		t.Error("*Error does not unwrap to its cause")
	}
}

// An ingress process runs the adapter for its webhooks only: inbound
// traffic is stored, outbound work is left to the adapter workers, and the
// adapter is stopped at the end.
func TestRunnerInboundOnly(t *testing.T) {
	t.Parallel()
	a := &scriptAdapter{}
	h := startRunner(t, a, func(o *gateways.RunnerOptions) { o.InboundOnly = true })
	h.publish(sender, contact, &bus.Message{ID: "m1", Body: "for a worker"})
	host := startedHost(t, a)
	if err := host.Deliver(t.Context(), gateways.Inbound{ProviderID: "SM1", From: contact, To: "alice@localhost", Body: "hi"}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got := h.inbound(); len(got) != 1 || got[0].Message.Body != "hi" {
		t.Errorf("stored inbound %+v, want the one message", got)
	}

	// Nothing consumes the outbound stream: the message waits for a
	// worker, and the runner did not even create the workers' consumer.
	if n, err := h.streamMsgs(bus.StreamOut); err != nil || n != 1 {
		t.Errorf("out stream holds %d (%v), want the 1 message", n, err)
	}
	if _, err := h.b.JetStream().Consumer(t.Context(), bus.StreamOut, bus.AdapterConsumer(gw)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("outbound consumer lookup = %v, want ErrConsumerNotFound", err)
	}
	if err := h.stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
	if calls := a.Calls(); len(calls) != 0 {
		t.Errorf("adapter got %d sends, want none: %+v", len(calls), calls)
	}
	if starts, stops := a.counts(); starts != 1 || stops != 1 {
		t.Errorf("adapter started %d, stopped %d times; want 1, 1", starts, stops)
	}

	// A worker started later takes the message.
	w := &scriptAdapter{}
	startRunnerOn(t, h.b, w, nil)
	waitCalls(t, w, 1)
}
