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

func (n *Network) take(m gateways.Outbound) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, m)
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

// Send sends m. The toy network has no message ids.
func (a *Adapter) Send(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	return gateways.Sent{}, a.send(ctx, m)
}

func (a *Adapter) send(ctx context.Context, m gateways.Outbound) error {
	a.mu.Lock()
	h := a.host
	a.mu.Unlock()
	if h == nil {
		switch {
		case a.f.SendAfterStopSucceeds:
			return nil
		case a.f.SendAfterStopPermanent:
			return gateways.Reject(gateways.ServiceUnavailable, "stopped")
		}
		return fmt.Errorf("toy: %w", gateways.ErrNotConnected)
	}
	if err := a.checkAddress(m.To); err != nil {
		return err
	}
	switch {
	case a.f.SendBlocksOnContext:
		a.hold()
	case a.f.SendIgnoresContext:
	default:
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if a.net.isDown() {
		a.mu.Lock()
		a.wasDown = true
		a.mu.Unlock()
		switch {
		case a.f.PermanentWhenDown:
			return gateways.Reject(gateways.ServiceUnavailable, "the network is down")
		case a.f.HangWhenDown:
			a.hold()
		case a.f.SilentWhenDown:
			return nil
		}
		return fmt.Errorf("toy: network unreachable: %w", gateways.ErrNotConnected)
	}
	a.mu.Lock()
	wasDown := a.wasDown
	a.mu.Unlock()
	if wasDown && a.f.NoReconnect {
		return fmt.Errorf("toy: connection lost: %w", gateways.ErrNotConnected)
	}
	if a.f.HTTPGet != "" {
		resp, err := a.client.Get(a.f.HTTPGet)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if a.f.CallsOccupant {
		if err := h.Occupant(ctx, gateways.Occupant{User: m.From, Room: "#toys", Nick: "someone"}); err != nil {
			return err
		}
	}
	if !a.f.Drop {
		a.net.take(m)
	}
	if a.f.NoEcho {
		return nil
	}
	// Like the sandbox: the contact answers.
	return h.Deliver(ctx, gateways.Inbound{From: m.To, To: gateways.BareJID(m.From), Body: "echo: " + m.Body})
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
