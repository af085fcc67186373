// Package toy is a pretend network and an adapter for it, with switchable
// faults, for testing that gatewaytest's checks catch what they claim to.
// It lives in its own package so that its goroutines are told apart from
// the suite's by package path.
package toy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
)

// Network is reachable or not and remembers what it got.
type Network struct {
	mu   sync.Mutex
	down bool
	got  []gateways.Outbound
	ids  int
}

// SetDown makes the network unreachable (true) or reachable again.
func (n *Network) SetDown(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
}

func (n *Network) isDown() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.down
}

// take stores m and returns the id the network gives it.
func (n *Network) take(m gateways.Outbound) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, m)
	n.ids++
	return fmt.Sprintf("T%d", n.ids)
}

// Received reports whether the network got a message with body.
func (n *Network) Received(body string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.got {
		if m.Body == body {
			return true
		}
	}
	return false
}

// Faults switch on one misbehaviour each.
type Faults struct {
	LeakGoroutine          bool // Start starts a goroutine that Stop does not end
	StopPanicsBeforeStart  bool
	SendAfterStopSucceeds  bool
	SendAfterStopPermanent bool // refused with a permanent error, not ErrNotConnected
	PermanentWhenDown      bool // an outage is reported as a permanent failure
	HangWhenDown           bool // Send blocks while down, ignoring its context
	SilentWhenDown         bool // Send returns nil while down: the message is dropped
	NoReconnect            bool // once the network was down, Send never works again
	InvalidTransient       bool // an invalid address is a plain, transient error
	InvalidBareSentinel    bool // permanent, but not a *gateways.Error
	InvalidNoText          bool // a *gateways.Error without Text
	StartIgnoresContext    bool // Start blocks for a while whatever its context
	SendIgnoresContext     bool // Send succeeds whatever its context
	SendBlocksOnContext    bool // Send blocks for a while whatever its context
	Drop                   bool // Send returns nil but nothing reaches the network
	NoEcho                 bool // the contact does not answer (no Host.Deliver)
	CallsOccupant          bool // Send calls Host.Occupant
	KeepsFirstHost         bool // a second Start keeps using the first host
	// HTTPGet: Send also GETs this URL with the adapter's own HTTP client;
	// Stop closes the client's idle connections unless KeepIdleConns.
	HTTPGet       string
	KeepIdleConns bool
	IsRoomAll     bool // RoomAdapter: every address is a room
	JoinNoSelf    bool // RoomAdapter: Join never reports the user's occupant

	EmptySentID      bool // Send's Sent.IDs has an empty id after the real one
	SentTextTooLong  bool // Send's Sent.Text is longer than the body
	NoSentIDs        bool // Send returns no network ids
	EditDrops        bool // Edit returns nil but nothing reaches the network
	ReactUnsupported bool // React returns gateways.ErrUnsupported: declared, refused
	// TypeNotImplemented: Type refuses with feature-not-implemented.
	TypeNotImplemented bool
	MarkFails          bool // Mark fails with a plain error
	// EditBareErrorWithoutIDs: Edit of a target without network ids fails
	// with a plain error, not a *gateways.Error.
	EditBareErrorWithoutIDs bool
	// ReplyPanicsWithoutIDs: SendReply uses ReplyTo.NetworkIDs[0] unchecked.
	ReplyPanicsWithoutIDs bool
}

// Adapter is the toy network's adapter. Contacts start with "+", rooms
// with "#"; anything else is refused.
type Adapter struct {
	net     *Network
	f       Faults
	client  *http.Client
	release chan struct{}
	once    sync.Once

	mu        sync.Mutex
	host      gateways.Host // the host of the current run, nil when stopped
	everStart bool
	wasDown   bool
	firstHost gateways.Host
}

var _ gateways.Adapter = (*Adapter)(nil)

// New returns an adapter for net with faults f.
func New(net *Network, f Faults) *Adapter {
	return &Adapter{
		net:     net,
		f:       f,
		client:  &http.Client{Transport: &http.Transport{}},
		release: make(chan struct{}),
	}
}

// Release ends whatever a fault left running or blocked.
func (a *Adapter) Release() { a.once.Do(func() { close(a.release) }) }

// hold blocks for a while, or until Release.
func (a *Adapter) hold() {
	select {
	case <-a.release:
	case <-time.After(30 * time.Second):
	}
}

func (a *Adapter) Start(ctx context.Context, h gateways.Host) error {
	if a.f.StartIgnoresContext {
		a.hold()
	} else if err := ctx.Err(); err != nil {
		return err
	}
	if a.f.LeakGoroutine {
		go a.hold()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.firstHost == nil {
		a.firstHost = h
	}
	a.host = h
	if a.f.KeepsFirstHost {
		a.host = a.firstHost
	}
	a.everStart = true
	return nil
}

func (a *Adapter) Stop(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.everStart && a.f.StopPanicsBeforeStart {
		panic("toy: Stop before Start")
	}
	a.host = nil
	if !a.f.KeepIdleConns {
		a.client.CloseIdleConnections()
	}
	return nil
}

// Send sends m. The toy remembers the text (Sent.Text), as an SMS network
// that recognises reactions by their quote must.
func (a *Adapter) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	id, err := a.send(ctx, m)
	if err != nil || id == "" {
		return gateways.Sent{}, err
	}
	s := gateways.Sent{IDs: []string{id}, Text: m.Body}
	switch {
	case a.f.NoSentIDs:
		s.IDs = nil
	case a.f.EmptySentID:
		s.IDs = append(s.IDs, "")
	}
	if a.f.SentTextTooLong {
		s.Text += " and more"
	}
	return s, nil
}

// send sends m and returns the network's id for it, "" when it did not
// reach the network.
func (a *Adapter) send(ctx context.Context, m gateways.Outbound) (string, error) {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	if h == nil {
		switch {
		case a.f.SendAfterStopSucceeds:
			return "", nil
		case a.f.SendAfterStopPermanent:
			return "", gateways.Reject(gateways.ServiceUnavailable, "stopped")
		}
		return "", fmt.Errorf("toy: %w", gateways.ErrNotConnected)
	}
	if err := a.checkAddress(m.To); err != nil {
		return "", err
	}
	switch {
	case a.f.SendBlocksOnContext:
		a.hold()
	case a.f.SendIgnoresContext:
	default:
		if err := ctx.Err(); err != nil {
			return "", err
		}
	}
	if a.net.isDown() {
		a.mu.Lock()
		a.wasDown = true
		a.mu.Unlock()
		switch {
		case a.f.PermanentWhenDown:
			return "", gateways.Reject(gateways.ServiceUnavailable, "the network is down")
		case a.f.HangWhenDown:
			a.hold()
		case a.f.SilentWhenDown:
			return "", nil
		}
		return "", fmt.Errorf("toy: network unreachable: %w", gateways.ErrNotConnected)
	}
	a.mu.Lock()
	wasDown := a.wasDown
	a.mu.Unlock()
	if wasDown && a.f.NoReconnect {
		return "", fmt.Errorf("toy: connection lost: %w", gateways.ErrNotConnected)
	}
	if a.f.HTTPGet != "" {
		resp, err := a.client.Get(a.f.HTTPGet)
		if err != nil {
			return "", err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if a.f.CallsOccupant {
		if err := h.Occupant(ctx, gateways.Occupant{User: m.From, Room: "#toys", Nick: "someone"}); err != nil {
			return "", err
		}
	}
	id := ""
	if !a.f.Drop {
		id = a.net.take(m)
	}
	if a.f.NoEcho {
		return id, nil
	}
	// Like the sandbox: the contact answers.
	return id, h.Deliver(ctx, gateways.Inbound{From: m.To, To: gateways.BareJID(m.From), Body: "echo: " + m.Body})
}

func (a *Adapter) checkAddress(to string) error {
	if strings.HasPrefix(to, "+") || strings.HasPrefix(to, "#") {
		return nil
	}
	switch {
	case a.f.InvalidTransient:
		return errors.New("toy: no such address")
	case a.f.InvalidBareSentinel:
		return fmt.Errorf("toy: no such address: %w", gateways.ErrPermanent)
	case a.f.InvalidNoText:
		return &gateways.Error{Condition: gateways.ItemNotFound, Permanent: true}
	}
	return gateways.Reject(gateways.JIDMalformed, "%q is not a toy address", to)
}

// RoomAdapter is the toy adapter with rooms.
type RoomAdapter struct{ *Adapter }

var _ gateways.RoomAdapter = RoomAdapter{}

func (a RoomAdapter) IsRoom(address string) bool {
	return a.f.IsRoomAll || strings.HasPrefix(address, "#")
}

func (a RoomAdapter) Join(ctx context.Context, j gateways.Join) error {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	if h == nil {
		return fmt.Errorf("toy: %w", gateways.ErrNotConnected)
	}
	if err := h.Occupant(ctx, gateways.Occupant{User: j.User, Room: j.Room, Nick: "someone"}); err != nil {
		return err
	}
	if a.f.JoinNoSelf {
		return nil
	}
	return h.Occupant(ctx, gateways.Occupant{User: j.User, Room: j.Room, Nick: j.Nick, Self: true})
}

func (a RoomAdapter) Leave(ctx context.Context, l gateways.Leave) error {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	if h == nil {
		return fmt.Errorf("toy: %w", gateways.ErrNotConnected)
	}
	return h.Occupant(ctx, gateways.Occupant{User: l.User, Room: l.Room, Nick: l.Nick, Self: true, Left: true})
}

// Features: Featured declares every feature of package gateways, Reacting
// reactions alone. The toy network carries them all; the faults make the
// adapter refuse or mishandle what it declares.

// Featured is the toy adapter declaring every feature.
type Featured struct{ *Adapter }

var (
	_ gateways.Editor       = Featured{}
	_ gateways.Replier      = Featured{}
	_ gateways.Reactor      = Featured{}
	_ gateways.Retractor    = Featured{}
	_ gateways.MarkerSender = Featured{}
	_ gateways.Typer        = Featured{}
)

func (a Featured) Edit(ctx context.Context, e gateways.Edit) (gateways.Sent, error) {
	return a.edit(ctx, e)
}

func (a Featured) SendReply(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	return a.reply(ctx, m)
}

func (a Featured) React(ctx context.Context, r gateways.Reaction) error { return a.react(ctx, r) }

func (a Featured) Retract(ctx context.Context, r gateways.Retraction) error {
	return a.retract(ctx, r)
}

func (a Featured) Mark(ctx context.Context, m gateways.Marker) error { return a.mark(ctx, m) }

func (a Featured) Type(ctx context.Context, t gateways.Typing) error { return a.typing(ctx, t) }

// Reacting is the toy adapter declaring reactions only.
type Reacting struct{ *Adapter }

var _ gateways.Reactor = Reacting{}

func (a Reacting) React(ctx context.Context, r gateways.Reaction) error { return a.react(ctx, r) }

// ready is what a feature needs: a started adapter, a toy address, a live
// context and a reachable network.
func (a *Adapter) ready(ctx context.Context, to string) error {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	if h == nil {
		return fmt.Errorf("toy: %w", gateways.ErrNotConnected)
	}
	if err := a.checkAddress(to); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if a.net.isDown() {
		return fmt.Errorf("toy: network unreachable: %w", gateways.ErrNotConnected)
	}
	return nil
}

func unknownMessage() error {
	return gateways.Reject(gateways.ItemNotFound, "the toy network does not know that message")
}

// edit sends the correction as a new message: the toy cannot edit in place.
func (a *Adapter) edit(ctx context.Context, e gateways.Edit) (gateways.Sent, error) {
	if len(e.Target.NetworkIDs) == 0 {
		if a.f.EditBareErrorWithoutIDs {
			return gateways.Sent{}, errors.New("toy: no target")
		}
		return gateways.Sent{}, unknownMessage()
	}
	if a.f.EditDrops {
		return gateways.Sent{}, a.ready(ctx, e.To)
	}
	return a.Send(ctx, e.Outbound)
}

func (a *Adapter) reply(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	if a.f.ReplyPanicsWithoutIDs && m.ReplyTo != nil {
		_ = m.ReplyTo.NetworkIDs[0]
	}
	return a.Send(ctx, m)
}

func (a *Adapter) react(ctx context.Context, r gateways.Reaction) error {
	if a.f.ReactUnsupported {
		return fmt.Errorf("toy: reactions: %w", gateways.ErrUnsupported)
	}
	if err := a.ready(ctx, r.To); err != nil {
		return err
	}
	if len(r.Target.NetworkIDs) == 0 {
		return unknownMessage()
	}
	return nil
}

func (a *Adapter) retract(ctx context.Context, r gateways.Retraction) error {
	if err := a.ready(ctx, r.To); err != nil {
		return err
	}
	if len(r.Target.NetworkIDs) == 0 {
		return unknownMessage()
	}
	return nil
}

func (a *Adapter) mark(ctx context.Context, m gateways.Marker) error {
	if a.f.MarkFails {
		return errors.New("toy: marker lost")
	}
	return a.ready(ctx, m.To)
}

func (a *Adapter) typing(ctx context.Context, t gateways.Typing) error {
	if a.f.TypeNotImplemented {
		return gateways.Reject(gateways.FeatureNotImplemented, "the toy network does not show typing")
	}
	return a.ready(ctx, t.To)
}
