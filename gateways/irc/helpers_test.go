package irc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/irc"
	"github.com/xmppgw/xmppgw/internal/bustest"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

const (
	wait   = 10 * time.Second
	domain = "irc.localhost"
	alice  = "alice@localhost"
	aliceR = "alice@localhost/phone"
)

// event is one thing the adapter handed to the gateway.
type event struct {
	in  *gateways.Inbound
	occ *gateways.Occupant
	st  *gateways.Status
	// The adapter declares no features beyond messages, so these are
	// recorded only to be seen if it ever hands them over.
	react   *gateways.InboundReaction
	retract *gateways.InboundRetraction
	marker  *gateways.InboundMarker
	typing  *gateways.InboundTyping
}

func (e event) String() string {
	switch {
	case e.in != nil:
		s := fmt.Sprintf("deliver from=%q to=%q nick=%q body=%q groupchat=%v id=%q", e.in.From, e.in.To, e.in.Nick, e.in.Body, e.in.Groupchat, e.in.ProviderID)
		if e.in.Subject != nil {
			s += fmt.Sprintf(" subject=%q", *e.in.Subject)
		}
		return s
	case e.occ != nil:
		o := e.occ
		return fmt.Sprintf("occupant room=%q user=%q nick=%q left=%v newnick=%q self=%v role=%q status=%q", o.Room, o.User, o.Nick, o.Left, o.NewNick, o.Self, o.Role, o.Status)
	case e.st != nil:
		return fmt.Sprintf("report %+v", *e.st)
	case e.react != nil:
		return fmt.Sprintf("reaction %+v", *e.react)
	case e.retract != nil:
		return fmt.Sprintf("retraction %+v", *e.retract)
	case e.marker != nil:
		return fmt.Sprintf("marker %+v", *e.marker)
	case e.typing != nil:
		return fmt.Sprintf("typing %+v", *e.typing)
	}
	return "empty event"
}

// recordingHost is the gateway side: it records everything in order.
type recordingHost struct {
	mu      sync.Mutex
	events  []event
	changed chan struct{}
}

func newHost() *recordingHost { return &recordingHost{changed: make(chan struct{})} }

func (h *recordingHost) add(e event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *recordingHost) Deliver(_ context.Context, m gateways.Inbound) error {
	h.add(event{in: &m})
	return nil
}

func (h *recordingHost) Report(_ context.Context, s gateways.Status) error {
	h.add(event{st: &s})
	return nil
}

func (h *recordingHost) Occupant(_ context.Context, o gateways.Occupant) error {
	h.add(event{occ: &o})
	return nil
}

func (h *recordingHost) React(_ context.Context, r gateways.InboundReaction) error {
	h.add(event{react: &r})
	return nil
}

func (h *recordingHost) Retract(_ context.Context, r gateways.InboundRetraction) error {
	h.add(event{retract: &r})
	return nil
}

func (h *recordingHost) Mark(_ context.Context, m gateways.InboundMarker) error {
	h.add(event{marker: &m})
	return nil
}

func (h *recordingHost) Type(_ context.Context, t gateways.InboundTyping) error {
	h.add(event{typing: &t})
	return nil
}

// Recent: the adapter never asks the runner to remember text.
func (h *recordingHost) Recent(context.Context, string, string) ([]gateways.RecentMessage, error) {
	return nil, nil
}

// all returns the events so far.
func (h *recordingHost) all() []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]event(nil), h.events...)
}

// mark is a position in the event log: waitFrom looks only after it.
func (h *recordingHost) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// waitFrom returns the index of the first event at or after from that
// matches, waiting up to wait for it.
func (h *recordingHost) waitFrom(t testing.TB, from int, what string, match func(event) bool) int {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		for i := from; i < len(h.events); i++ {
			if match(h.events[i]) {
				h.mu.Unlock()
				return i
			}
		}
		changed := h.changed
		h.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v; events:\n%s", what, wait, h.dump(from))
		}
	}
}

func (h *recordingHost) dump(from int) string {
	var b strings.Builder
	for i, e := range h.all() {
		if i >= from {
			fmt.Fprintf(&b, "  %3d %s\n", i, e)
		}
	}
	return b.String()
}

// Matchers.

func dm(from, body string) func(event) bool {
	return func(e event) bool {
		return e.in != nil && !e.in.Groupchat && e.in.From == from && e.in.Body == body
	}
}

func groupchat(room, nick, body string) func(event) bool {
	return func(e event) bool {
		return e.in != nil && e.in.Groupchat && e.in.From == room && e.in.Nick == nick && e.in.Body == body && e.in.Subject == nil
	}
}

func subject(room, nick, subj string) func(event) bool {
	return func(e event) bool {
		return e.in != nil && e.in.Groupchat && e.in.From == room && e.in.Nick == nick && e.in.Subject != nil && *e.in.Subject == subj
	}
}

func notice(contains string) func(event) bool {
	return func(e event) bool {
		return e.in != nil && e.in.From == "" && !e.in.Groupchat && strings.Contains(e.in.Body, contains)
	}
}

func occupant(room, nick string, left bool) func(event) bool {
	return func(e event) bool {
		return e.occ != nil && e.occ.Room == room && e.occ.Nick == nick && e.occ.Left == left
	}
}

// fixture is an adapter on a real ngircd, with its KV store.
type fixture struct {
	srv  *irctest.Server
	host *recordingHost
	a    gateways.Adapter
	reg  gateways.Registrar
	kv   jetstream.KeyValue
	cfg  *irc.Config
}

func (f *fixture) rooms() gateways.RoomAdapter { return f.a.(gateways.RoomAdapter) }

func (f *fixture) chooser() gateways.AddressChooser { return f.reg.(gateways.AddressChooser) }

// ircConfig returns the adapter's configuration for srv with defaults.
func ircConfig(srv *irctest.Server) *irc.Config {
	info, ok := gateways.Lookup(irc.ID)
	if !ok {
		panic("irc adapter not registered")
	}
	cfg := info.NewConfig().(*irc.Config)
	cfg.Server = srv.Addr()
	cfg.Password = srv.Password()
	return cfg
}

// setup starts an embedded bus and builds the adapter (not started).
// users maps bare JIDs to nicks registered before Start.
func setup(t *testing.T, srv *irctest.Server, cfg *irc.Config, users map[string]string) *fixture {
	t.Helper()
	return setupLogged(t, srv, cfg, users, t.Output())
}

// setupLogged is setup with the adapter's log going to logs.
func setupLogged(t *testing.T, srv *irctest.Server, cfg *irc.Config, users map[string]string, logs io.Writer) *fixture {
	t.Helper()
	b := bustest.Open(t)
	kv, err := b.JetStream().KeyValue(context.Background(), bus.BucketRegistrations)
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil {
		cfg = ircConfig(srv)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := irc.New(gateways.Params{
		Name: "irc", Domain: domain, Config: cfg, Registrations: kv,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := a.(gateways.RegistrarProvider).Registrar()
	for user, nick := range users {
		if _, err := reg.(gateways.AddressChooser).RegisterAs(context.Background(), user, nick); err != nil {
			t.Fatalf("RegisterAs(%s, %s): %v", user, nick, err)
		}
	}
	return &fixture{srv: srv, host: newHost(), a: a, reg: reg, kv: kv, cfg: cfg}
}

// start starts the adapter and stops it on cleanup.
func (f *fixture) start(t *testing.T) {
	t.Helper()
	if err := f.a.Start(t.Context(), f.host); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.a.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

// started is setup + start with alice registered as "alice".
func started(t *testing.T, srv *irctest.Server) *fixture {
	t.Helper()
	f := setup(t, srv, nil, map[string]string{alice: "alice"})
	f.start(t)
	return f
}

// checkNoGoroutines fails if a goroutine of the adapter package is still
// running (they may take a moment to unwind). Only a test that does not
// run in parallel with others can use it.
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "xmppgw/gateways/irc.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d adapter goroutines left after Stop:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func send(t *testing.T, a gateways.Adapter, m gateways.Outbound) {
	t.Helper()
	if m.ID == "" {
		m.ID = fmt.Sprintf("m%d", time.Now().UnixNano())
	}
	if m.Attempt == 0 {
		m.Attempt = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := a.Send(ctx, m); err != nil {
		t.Fatalf("Send(%+v): %v", m, err)
	}
}

func condition(err error) gateways.Condition {
	var ge *gateways.Error
	if errors.As(err, &ge) {
		return ge.Condition
	}
	return ""
}

// privmsg matches a PRIVMSG bob receives.
func privmsg(from, target, text string) func(irctest.Line) bool {
	return func(l irctest.Line) bool {
		return l.Command == "PRIVMSG" && l.Nick() == from && l.Param(0) == target && l.Text() == text
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
