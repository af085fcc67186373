package irc_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

// When the server goes away the user is told, sends fail as retryable,
// and once it is back the user is reconnected, rejoined and told again.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	bob := srv.Dial(t, "bob")
	bob.Join(t, "#room")
	bob.Send(t, "TOPIC #room :before the restart")
	bob.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "TOPIC" })
	join(t, f, aliceR, "#room")

	mark := f.host.mark()
	srv.Stop(t)
	f.host.waitFrom(t, mark, "the notice of the lost connection", notice("Lost the connection to the IRC server"))

	for _, m := range []gateways.Outbound{
		{ID: "down-1", From: aliceR, To: "bob", Body: "anyone?", Attempt: 1},
		{ID: "down-2", From: aliceR, To: "#room", Body: "anyone?", Groupchat: true, Attempt: 1},
	} {
		_, err := f.a.Send(context.Background(), m)
		if !errors.Is(err, gateways.ErrNotConnected) || errors.Is(err, gateways.ErrPermanent) {
			t.Errorf("Send to %s while down = %v; want a retryable ErrNotConnected", m.To, err)
		}
	}

	srv.Start(t)
	f.host.waitFrom(t, mark, "the notice of the reconnection", notice("Reconnected to the IRC server as alice"))
	// The room is rejoined: bob (gone with the old server) left, alice is
	// back as herself, the subject follows (the channel is new, so it is
	// empty), then a note in the room.
	left := f.host.waitFrom(t, mark, "bob leaving", occupant("#room", "bob", true))
	self := f.host.waitFrom(t, left, "alice rejoining", func(e event) bool {
		return occupant("#room", "alice", false)(e) && e.occ.Self && e.occ.User == aliceR
	})
	subj := f.host.waitFrom(t, self, "the subject", subject("#room", "", ""))
	f.host.waitFrom(t, subj, "the room notice", groupchat("#room", "", "Reconnected; rejoined #room"))
	if o := f.host.all()[self].occ; o.Role != "moderator" {
		t.Errorf("alice rejoined an empty channel, so she is its operator: role %q", o.Role)
	}

	bob2 := srv.Dial(t, "bob")
	bob2.Join(t, "#room")
	f.host.waitFrom(t, subj, "bob back in the room", occupant("#room", "bob", false))
	send(t, f.a, gateways.Outbound{From: aliceR, To: "#room", Body: "welcome back", Groupchat: true})
	bob2.Wait(t, wait, privmsg("alice", "#room", "welcome back"))
	mark = f.host.mark()
	bob2.Privmsg(t, "alice", "hello again")
	f.host.waitFrom(t, mark, "bob's message", dm("bob", "hello again"))
}

// A connection that stops answering (no data, no PONG) is detected by its
// read deadline and replaced.
func TestDeadConnection(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	p := newProxy(t, srv.Addr())
	cfg := ircConfig(srv)
	cfg.Server = p.addr()
	cfg.PingInterval = 300 * time.Millisecond
	cfg.PingTimeout = 300 * time.Millisecond
	f := setup(t, srv, cfg, map[string]string{alice: "alice"})
	f.start(t)
	bob := srv.Dial(t, "bob")

	mark := f.host.mark()
	p.freeze() // the connection stays open but nothing gets through
	f.host.waitFrom(t, mark, "the notice of the lost connection", notice("Lost the connection"))
	f.host.waitFrom(t, mark, "the notice of the reconnection", notice("Reconnected"))
	// The old connection is still registered on the server until it times
	// out there, so the new one may have had to take alice_.
	var nick string
	for _, e := range f.host.all()[mark:] {
		if e.in != nil && strings.HasPrefix(e.in.Body, "Reconnected to the IRC server as ") {
			nick = strings.TrimSuffix(strings.TrimPrefix(e.in.Body, "Reconnected to the IRC server as "), ".")
		}
	}
	mark = f.host.mark()
	bob.Privmsg(t, nick, "are you there?")
	f.host.waitFrom(t, mark, "bob's message on the new connection", dm("bob", "are you there?"))
}

// proxy relays TCP connections to a server until frozen; frozen, it keeps
// the connections open and relays nothing, like a network that died.
// New connections are relayed again.
type proxy struct {
	l      net.Listener
	to     string
	mu     sync.Mutex
	conns  []net.Conn
	frozen chan struct{}
}

func newProxy(t *testing.T, to string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, to: to, frozen: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.relay(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

// freeze stops relaying on the connections open now.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.frozen)
	p.frozen = make(chan struct{})
}

func (p *proxy) relay(c net.Conn) {
	s, err := net.Dial("tcp", p.to)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	frozen := p.frozen
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			select {
			case <-frozen:
				_, _ = io.Copy(io.Discard, src) // swallow, never answer
				return
			default:
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go pipe(s, c)
	go pipe(c, s)
}
