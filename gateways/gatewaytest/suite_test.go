package gatewaytest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest/internal/toy"
)

// The suite's own tests: a conforming toy adapter passes every check, and
// each check fails a toy broken in the way the check is about, for that
// reason. Tests here do not run in parallel (the goroutine check counts).

// recorder is a testing.TB that records failures instead of reporting them,
// so that a check can be seen to fail. What it does not override (TempDir,
// Name…) goes to the real test.
type recorder struct {
	testing.TB
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	failed   bool
	skipped  bool
	out      strings.Builder
	cleanups []func()
}

func newRecorder(t *testing.T) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	return &recorder{TB: t, ctx: ctx, cancel: cancel}
}

func (r *recorder) log(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.WriteString(strings.TrimSuffix(s, "\n") + "\n")
}

func (r *recorder) fail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

func (r *recorder) skip() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped = true
}

func (r *recorder) Helper()                           {}
func (r *recorder) Log(args ...any)                   { r.log(fmt.Sprintln(args...)) }
func (r *recorder) Logf(format string, args ...any)   { r.log(fmt.Sprintf(format, args...)) }
func (r *recorder) Error(args ...any)                 { r.Log(args...); r.fail() }
func (r *recorder) Errorf(format string, args ...any) { r.Logf(format, args...); r.fail() }
func (r *recorder) Fail()                             { r.fail() }
func (r *recorder) FailNow()                          { r.fail(); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)                 { r.Log(args...); r.FailNow() }
func (r *recorder) Fatalf(format string, args ...any) { r.Logf(format, args...); r.FailNow() }
func (r *recorder) SkipNow()                          { r.skip(); runtime.Goexit() }
func (r *recorder) Skip(args ...any)                  { r.Log(args...); r.SkipNow() }
func (r *recorder) Skipf(format string, args ...any)  { r.Logf(format, args...); r.SkipNow() }
func (r *recorder) Context() context.Context          { return r.ctx }

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *recorder) Skipped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// run runs f as a test body would: on its own goroutine (FailNow ends it),
// then the cleanups, last first.
func (r *recorder) run(f func()) {
	goexit := func(f func()) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f()
		}()
		<-done
	}
	goexit(f)
	r.cancel()
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		goexit(f)
	}
}

// fastLimits keep the failing cases quick; the toy answers at once.
var fastLimits = limits{
	start:     5 * time.Second,
	send:      5 * time.Second,
	stop:      5 * time.Second,
	prompt:    time.Second,
	slack:     500 * time.Millisecond,
	offline:   time.Second,
	settle:    5 * time.Second,
	reconnect: 2 * time.Second,
	leak:      time.Second,
}

// runCheck runs one check of h under a recorder.
func runCheck(t *testing.T, name string, h Harness) *recorder {
	t.Helper()
	if err := h.init(); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(checks, func(c check) bool { return c.name == name })
	if i < 0 {
		t.Fatalf("no check %q", name)
	}
	r := newRecorder(t)
	c := newChecker(r, t, h)
	c.lim = fastLimits
	r.run(func() { checks[i].fn(c) })
	return r
}

type toyOpts struct {
	caps      gateways.Capabilities
	rooms     bool // the adapter implements RoomAdapter
	noHooks   bool // no Disconnect, Reconnect, Received
	noInvalid bool
	// features: "all" for toy.Featured, "reactions" for toy.Reacting.
	features string
}

// toyHarness describes a toy adapter with faults f on a network of its own.
func toyHarness(f toy.Faults, o toyOpts) Harness {
	net := &toy.Network{}
	h := Harness{
		Info:    gateways.Info{ID: "toy", Type: "sms", Capabilities: o.caps},
		Contact: "+15551234567",
		Invalid: "nobody",
		New: func(t *testing.T) gateways.Adapter {
			a := toy.New(net, f)
			t.Cleanup(a.Release)
			switch {
			case o.rooms:
				return toy.RoomAdapter{Adapter: a}
			case o.features == "all":
				return toy.Featured{Adapter: a}
			case o.features == "reactions":
				return toy.Reacting{Adapter: a}
			}
			return a
		},
	}
	if o.rooms {
		h.Room = "#toys"
	}
	if o.noInvalid {
		h.Invalid = ""
	}
	if !o.noHooks {
		h.Disconnect = func(*testing.T) { net.SetDown(true) }
		h.Reconnect = func(*testing.T) { net.SetDown(false) }
		h.Received = func(_ *testing.T, body string) bool { return net.Received(body) }
	}
	return h
}

// The suite passes conforming adapters; a failure here is the suite's bug.
func TestRunPassesConformingToys(t *testing.T) {
	tests := []struct {
		name string
		o    toyOpts
	}{
		{"text only", toyOpts{}},
		{"media and receipts", toyOpts{caps: gateways.Capabilities{Media: true, Receipts: true}}},
		{"rooms", toyOpts{caps: gateways.Capabilities{Rooms: true}, rooms: true}},
		{"every feature", toyOpts{features: "all"}},
		{"every feature, network not observed", toyOpts{features: "all", noHooks: true}},
		{"reactions only", toyOpts{features: "reactions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Run(t, toyHarness(toy.Faults{}, tt.o))
		})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	t.Run("http client", func(t *testing.T) {
		Run(t, toyHarness(toy.Faults{HTTPGet: srv.URL}, toyOpts{}))
	})
}

// Every check fails an adapter broken in its way, saying why.
func TestChecksCatchBrokenAdapters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	rooms := toyOpts{caps: gateways.Capabilities{Rooms: true}, rooms: true}
	tests := []struct {
		name  string
		check string
		f     toy.Faults
		o     toyOpts
		want  string // in the failure
	}{
		{"Stop panics without Start", "Lifecycle", toy.Faults{StopPanicsBeforeStart: true}, toyOpts{}, "Stop without Start panicked"},
		{"Send after Stop succeeds", "Lifecycle", toy.Faults{SendAfterStopSucceeds: true}, toyOpts{}, "Send after Stop = nil"},
		{"Send after Stop is permanent", "Lifecycle", toy.Faults{SendAfterStopPermanent: true}, toyOpts{}, "a permanent error"},
		{"messages are dropped", "Lifecycle", toy.Faults{Drop: true}, toyOpts{}, "the network did not get"},
		{"second run uses the first host", "Lifecycle", toy.Faults{KeepsFirstHost: true}, toyOpts{}, "host of its first run"},
		{"occupants without rooms", "Lifecycle", toy.Faults{CallsOccupant: true}, toyOpts{}, "called Host.Occupant"},
		{"Start ignores its context", "StartContext", toy.Faults{StartIgnoresContext: true}, toyOpts{}, "did not return within"},
		{"outage is permanent", "SendDisconnected", toy.Faults{PermanentWhenDown: true}, toyOpts{}, "a permanent error"},
		{"Send hangs in an outage", "SendDisconnected", toy.Faults{HangWhenDown: true}, toyOpts{}, "did not return within"},
		{"outage not noticed", "SendDisconnected", toy.Faults{SilentWhenDown: true}, toyOpts{}, "= nil twice"},
		{"no reconnection", "SendDisconnected", toy.Faults{NoReconnect: true}, toyOpts{}, "after Reconnect"},
		{"invalid address is transient", "Errors", toy.Faults{InvalidTransient: true}, toyOpts{}, "not permanent"},
		{"permanent without *Error", "Errors", toy.Faults{InvalidBareSentinel: true}, toyOpts{}, "want a *gateways.Error"},
		{"*Error without text", "Errors", toy.Faults{InvalidNoText: true}, toyOpts{}, "without a Text"},
		{"rooms declared, not implemented", "Capabilities", toy.Faults{}, toyOpts{caps: gateways.Capabilities{Rooms: true}}, "does not implement gateways.RoomAdapter"},
		{"rooms implemented, not declared", "Capabilities", toy.Faults{}, toyOpts{rooms: true}, "Info.Capabilities.Rooms is false"},
		{"every address a room", "Capabilities", toy.Faults{IsRoomAll: true}, rooms, `IsRoom("+15551234567") = true`},
		{"goroutine left running", "Goroutines", toy.Faults{LeakGoroutine: true}, toyOpts{}, "still running"},
		{"idle HTTP connections kept", "Goroutines", toy.Faults{HTTPGet: srv.URL, KeepIdleConns: true}, toyOpts{}, "net/http.(*persistConn)"},
		// The host refuses the contact's answer, so Send fails, but the
		// message went out.
		{"Send ignores its context", "SendContext", toy.Faults{SendIgnoresContext: true}, toyOpts{}, "the network got the message"},
		{"Send ignores its context, no answer", "SendContext", toy.Faults{SendIgnoresContext: true, NoEcho: true}, toyOpts{noHooks: true}, "context = nil"},
		{"Send blocks whatever its context", "SendContext", toy.Faults{SendBlocksOnContext: true}, toyOpts{}, "did not return within"},
		{"join never completes", "Rooms", toy.Faults{JoinNoSelf: true}, rooms, "no matching occupant change"},
		// What Send returns is checked wherever the suite sends.
		{"an empty network id", "Lifecycle", toy.Faults{EmptySentID: true}, toyOpts{}, "contains an empty id"},
		{"remembered text longer than the body", "Lifecycle", toy.Faults{SentTextTooLong: true}, toyOpts{}, "longer than the body sent"},
		// A declared feature that is refused or fails is a lie.
		{"reactions declared, refused", "Features", toy.Faults{ReactUnsupported: true}, toyOpts{features: "reactions"},
			"declares reactions (implements gateways.Reactor) but React returned toy: reactions: unsupported"},
		{"every feature declared, reactions refused", "Features", toy.Faults{ReactUnsupported: true}, toyOpts{features: "all"},
			"declares reactions (implements gateways.Reactor) but React returned"},
		{"typing declared, feature-not-implemented", "Features", toy.Faults{TypeNotImplemented: true}, toyOpts{features: "all"},
			"declares typing (implements gateways.Typer) but Type returned"},
		{"markers declared, failing", "Features", toy.Faults{MarkFails: true}, toyOpts{features: "all"},
			"declares markers (implements gateways.MarkerSender) but Mark returned toy: marker lost"},
		{"correction lost", "Features", toy.Faults{EditDrops: true}, toyOpts{features: "all"}, "Edit returned nil but the network did not get"},
		{"corrections without network ids", "Features", toy.Faults{NoSentIDs: true}, toyOpts{features: "all"},
			"declares corrections (implements gateways.Editor) but Send returned no network ids"},
		{"unknown correction target, unclear error", "Features", toy.Faults{EditBareErrorWithoutIDs: true}, toyOpts{features: "all"},
			"declares corrections (implements gateways.Editor); Edit of a message without network ids (Target.NetworkIDs empty, as for one older than the id map) returned toy: no target (*errors.errorString): want nil, or a *gateways.Error"},
		{"unknown reply target panics", "Features", toy.Faults{ReplyPanicsWithoutIDs: true}, toyOpts{features: "all"},
			"SendReply to a message without network ids (ReplyTo.NetworkIDs empty, as for one older than the id map) panicked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCheck(t, tt.check, toyHarness(tt.f, tt.o))
			out := r.output()
			if !r.Failed() {
				t.Fatalf("check %s passed a broken adapter; it said:\n%s", tt.check, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("check %s failed, but not saying %q:\n%s", tt.check, tt.want, out)
			}
			t.Logf("check %s said:\n%s", tt.check, out)
		})
	}
}

// A check whose hook is missing is skipped, saying which; it does not pass
// silently.
func TestChecksSkipWithoutHooks(t *testing.T) {
	tests := []struct {
		check string
		o     toyOpts
		want  string
	}{
		{"SendDisconnected", toyOpts{noHooks: true}, "Harness.Disconnect is not set"},
		{"Errors", toyOpts{noInvalid: true}, "Harness.Invalid is not set"},
		{"Rooms", toyOpts{}, "does not declare Capabilities.Rooms"},
		{"Features", toyOpts{}, "declares no features"},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			r := runCheck(t, tt.check, toyHarness(toy.Faults{}, tt.o))
			if r.Failed() || !r.Skipped() || !strings.Contains(r.output(), tt.want) {
				t.Errorf("failed %v, skipped %v, said:\n%s\nwant a skip saying %q", r.Failed(), r.Skipped(), r.output(), tt.want)
			}
		})
	}
}

func TestHarnessValidation(t *testing.T) {
	newToy := func(*testing.T) gateways.Adapter { return toy.New(&toy.Network{}, toy.Faults{}) }
	tests := []struct {
		name string
		h    Harness
	}{
		{"no New", Harness{Contact: "+15551234567"}},
		{"no Contact", Harness{New: newToy}},
		{"Disconnect without Reconnect", Harness{New: newToy, Contact: "+15551234567", Disconnect: func(*testing.T) {}}},
	}
	for _, tt := range tests {
		if err := tt.h.init(); err == nil {
			t.Errorf("%s: init = nil, want an error", tt.name)
		}
	}
	h := Harness{New: newToy, Contact: "+15551234567"}
	if err := h.init(); err != nil || h.User != DefaultUser {
		t.Errorf("init = %v, User %q; want nil, %q", err, h.User, DefaultUser)
	}
}

func TestHostRefusesWhatTheBusWould(t *testing.T) {
	h := NewHost()
	ctx := context.Background()
	if err := h.Deliver(ctx, gateways.Inbound{From: "+15551234567", Body: "no recipient"}); err == nil {
		t.Error("Deliver without To = nil, want an invalid envelope error")
	}
	if err := h.Report(ctx, gateways.Status{User: "alice@example.com", Contact: "+15551234567", State: "delivered"}); err == nil {
		t.Error("Report without Ref = nil, want an invalid envelope error")
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.Deliver(ended, gateways.Inbound{From: "+15551234567", To: "alice@example.com", Body: "hi"}); err == nil {
		t.Error("Deliver with a cancelled context = nil, want the context's error")
	}
	if n := len(h.Delivered()) + len(h.Reports()); n != 0 {
		t.Errorf("the host recorded %d refused calls", n)
	}
	in := gateways.Inbound{ProviderID: "1", From: "+15551234567", To: "alice@example.com", Body: "hi"}
	if err := h.Deliver(ctx, in); err != nil {
		t.Fatal(err)
	}
	if got := h.WaitDelivered(t, time.Second, func(m gateways.Inbound) bool { return m.Body == "hi" }); got.ProviderID != "1" {
		t.Errorf("WaitDelivered = %+v", got)
	}
	o := gateways.Occupant{User: "alice@example.com/x", Room: "#r", Nick: "alice", Self: true}
	if err := h.Occupant(ctx, o); err != nil {
		t.Fatal(err)
	}
	if got := h.WaitOccupant(t, time.Second, nil); got != o {
		t.Errorf("WaitOccupant = %+v, want %+v", got, o)
	}

	r := newRecorder(t)
	r.run(func() { h.WaitReport(r, 50*time.Millisecond, nil) })
	if !r.Failed() || !strings.Contains(r.output(), "no matching status report") {
		t.Errorf("WaitReport with nothing reported: failed %v, said %q", r.Failed(), r.output())
	}
}
