package irc_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/irc"
	"github.com/xmppgw/xmppgw/internal/irctest"
	"github.com/xmppgw/xmppgw/internal/proctest"
)

const bobJID = "bob@localhost"

// waitOnIRC waits until nick is connected, as seen by c (ISON).
func waitOnIRC(t *testing.T, c *irctest.Client, nick string) {
	t.Helper()
	waitISON(t, c, nick, true)
}

// waitOffIRC waits until nick is gone.
func waitOffIRC(t *testing.T, c *irctest.Client, nick string) {
	t.Helper()
	waitISON(t, c, nick, false)
}

func waitISON(t *testing.T, c *irctest.Client, nick string, on bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c.Send(t, "ISON "+nick)
		l := c.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "303" })
		if strings.EqualFold(strings.TrimSpace(l.Text()), nick) == on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on IRC is not %v after %v", nick, on, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRegistration(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := setup(t, srv, nil, nil)
	f.start(t)
	ctx := context.Background()
	bob := srv.Dial(t, "bob")

	label, instructions := f.chooser().AddressField()
	if label == "" || !strings.Contains(instructions, "nick") {
		t.Errorf("AddressField = %q, %q", label, instructions)
	}

	_, err := f.reg.Register(ctx, alice)
	var ge *gateways.Error
	if !errors.As(err, &ge) || !ge.Permanent || ge.Condition != gateways.NotAcceptable || !strings.Contains(ge.Text, "nick") {
		t.Errorf("Register without a nick = %v; want a permanent not-acceptable asking for a nick", err)
	}

	t.Run("bad nicks", func(t *testing.T) {
		for _, nick := range []string{"", "1abc", "-abc", "two words", "ünï", strings.Repeat("a", 31), "a@b", "a!b", "#chan", "a,b", "a:b"} {
			if _, err := f.chooser().RegisterAs(ctx, alice, nick); condition(err) != gateways.NotAcceptable || !errors.Is(err, gateways.ErrPermanent) {
				t.Errorf("RegisterAs(%q) = %v, want a permanent not-acceptable", nick, err)
			}
		}
		if n, _ := f.reg.Lookup(ctx, alice); n != "" {
			t.Errorf("a refused nick was registered: %q", n)
		}
	})

	t.Run("register connects", func(t *testing.T) {
		n, err := f.chooser().RegisterAs(ctx, alice, "Alice")
		if err != nil || n != "Alice" {
			t.Fatalf("RegisterAs = %q, %v", n, err)
		}
		for _, get := range []func(context.Context, string) (string, error){f.reg.Lookup, f.reg.Register} {
			if n, err := get(ctx, "ALICE@localhost"); err != nil || n != "Alice" {
				t.Errorf("after registering: %q, %v; want Alice (JIDs are case-insensitive)", n, err)
			}
		}
		waitOnIRC(t, bob, "Alice")
		mark := f.host.mark()
		bob.Privmsg(t, "Alice", "welcome")
		f.host.waitFrom(t, mark, "bob's welcome", dm("bob", "welcome"))
	})

	t.Run("nicks are unique, case-insensitively", func(t *testing.T) {
		for _, nick := range []string{"alice", "ALICE", "Alice"} {
			if _, err := f.chooser().RegisterAs(ctx, bobJID, nick); condition(err) != gateways.Conflict {
				t.Errorf("RegisterAs(bob, %q) = %v, want conflict", nick, err)
			}
		}
		if _, err := f.chooser().RegisterAs(ctx, "carol@localhost", "[x]"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.chooser().RegisterAs(ctx, "dave@localhost", "{X}"); condition(err) != gateways.Conflict {
			t.Errorf("{X} after [x] = %v, want conflict (IRC folds [] to {})", err)
		}
		if err := f.reg.Assign(ctx, "dave@localhost", "alice"); condition(err) != gateways.Conflict {
			t.Errorf("Assign of a taken nick = %v, want conflict", err)
		}
	})

	t.Run("a new nick changes the connected user's", func(t *testing.T) {
		join(t, f, aliceR, "#reg")
		bob.Join(t, "#reg")
		if _, err := f.chooser().RegisterAs(ctx, alice, "alice2"); err != nil {
			t.Fatal(err)
		}
		bob.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "NICK" && l.Nick() == "Alice" && l.Param(0) == "alice2" })
		// The old nick is free for others.
		if _, err := f.chooser().RegisterAs(ctx, bobJID, "alice"); err != nil {
			t.Errorf("registering the released nick: %v", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		got, err := f.reg.List(ctx)
		want := map[string]string{alice: "alice2", bobJID: "alice", "carol@localhost": "[x]"}
		if err != nil || len(got) != len(want) {
			t.Fatalf("List = %v, %v; want %v", got, err, want)
		}
		for u, n := range want {
			if got[u] != n {
				t.Errorf("List[%s] = %q, want %q", u, got[u], n)
			}
		}
	})

	t.Run("unregister disconnects", func(t *testing.T) {
		nick, err := f.reg.Unregister(ctx, alice)
		if err != nil || nick != "alice2" {
			t.Fatalf("Unregister = %q, %v", nick, err)
		}
		bob.Wait(t, wait, func(l irctest.Line) bool {
			return l.Command == "QUIT" && l.Nick() == "alice2" && strings.Contains(l.Text(), "Unregistered")
		})
		_, err = f.a.Send(ctx, gateways.Outbound{ID: "x", From: aliceR, To: "bob", Body: "hi", Attempt: 1})
		if condition(err) != gateways.RegistrationRequired {
			t.Errorf("Send after unregistering = %v, want registration-required", err)
		}
		if nick, err := f.reg.Unregister(ctx, alice); err != nil || nick != "" {
			t.Errorf("unregistering twice = %q, %v", nick, err)
		}
		if _, err := f.chooser().RegisterAs(ctx, "erin@localhost", "alice2"); err != nil {
			t.Errorf("the unregistered nick is not free: %v", err)
		}
	})

	t.Run("assign and unassign", func(t *testing.T) {
		if err := f.reg.Assign(ctx, "frank@localhost", "frank"); err != nil {
			t.Fatal(err)
		}
		waitOnIRC(t, bob, "frank")
		user, err := f.reg.Unassign(ctx, "FRANK")
		if err != nil || user != "frank@localhost" {
			t.Fatalf("Unassign = %q, %v", user, err)
		}
		waitOffIRC(t, bob, "frank")
		if _, err := f.reg.Unassign(ctx, "frank"); condition(err) != gateways.ItemNotFound {
			t.Errorf("unassigning a free nick = %v, want item-not-found", err)
		}
	})
}

// The registered nick is in use on IRC: the user gets the nick with _
// and is told.
func TestNickInUse(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	squatter := srv.Dial(t, "alice")
	f := started(t, srv)
	f.host.waitFrom(t, 0, "the notice", notice("The nick alice is in use on IRC; you are alice_"))
	squatter.Privmsg(t, "alice_", "you are alice_")
	f.host.waitFrom(t, 0, "the message to alice_", dm("alice", "you are alice_"))
	send(t, f.a, gateways.Outbound{From: aliceR, To: "alice", Body: "hi, squatter"})
	squatter.Wait(t, wait, privmsg("alice_", "alice", "hi, squatter"))
}

// A server that refuses the nick outright (too long here: the server's
// limit went down after the user registered) leaves the user unable to
// send until they choose another, and they are told why.
func TestNickRefusedByServer(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{MaxNickLength: 9})
	f := setup(t, srv, nil, nil)
	// What the bucket remembers from before the server's limit went down.
	if _, err := f.kv.Put(t.Context(), "irc.server.nicklen", []byte("30")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.chooser().RegisterAs(t.Context(), alice, "alice_is_long"); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	f.host.waitFrom(t, 0, "the notice", notice("refuses the nick alice_is_long"))
	_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: "bob", Body: "hi", Attempt: 1})
	if condition(err) != gateways.NotAcceptable || !errors.Is(err, gateways.ErrPermanent) {
		t.Fatalf("Send = %v, want a permanent not-acceptable", err)
	}
	bob := srv.Dial(t, "bob")
	if _, err := f.chooser().RegisterAs(context.Background(), alice, "alice"); err != nil {
		t.Fatal(err)
	}
	waitOnIRC(t, bob, "alice")
	send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: "short nick now"})
	bob.Wait(t, wait, privmsg("alice", "bob", "short nick now"))
	// The server's NICKLEN now bounds registration.
	if _, err := f.chooser().RegisterAs(context.Background(), bobJID, "bobbybobby"); condition(err) != gateways.NotAcceptable {
		t.Errorf("a nick over the server's 9 characters = %v, want not-acceptable", err)
	}
}

// syncBuffer is a log sink for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServerPassword(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{Password: "s3cret-pw"})
	t.Run("right", func(t *testing.T) {
		f := started(t, srv) // config takes the server's password
		bob := srv.Dial(t, "bob")
		send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: "with password"})
		bob.Wait(t, wait, privmsg("alice", "bob", "with password"))
	})
	t.Run("wrong", func(t *testing.T) {
		cfg := ircConfig(srv)
		cfg.Password = "wrong-pw"
		var logs syncBuffer
		f := setupLogged(t, srv, cfg, map[string]string{alice: "alice"}, &logs)
		f.start(t)
		_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: "bob", Body: "hi", Attempt: 1})
		if !errors.Is(err, gateways.ErrNotConnected) || errors.Is(err, gateways.ErrPermanent) {
			t.Errorf("Send = %v, want a retryable ErrNotConnected", err)
		}
		if !strings.Contains(err.Error(), "Bad password") && !strings.Contains(err.Error(), "password") {
			t.Errorf("error %q does not say the password is wrong", err)
		}
		if strings.Contains(logs.String(), "wrong-pw") || strings.Contains(err.Error(), "wrong-pw") {
			t.Errorf("the password leaked into logs or errors:\n%s", logs.String())
		}
	})
}

// Before any connection has seen the server's NICKLEN, registration asks
// the server: the form names its limit, a longer nick is refused at once
// with that limit, and the limit is kept for other processes.
func TestNickLengthFromServer(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{MaxNickLength: 12})
	f := setup(t, srv, nil, nil) // not started: no user connection
	_, instructions := f.chooser().AddressField()
	if !strings.Contains(instructions, "up to 12 letters") {
		t.Errorf("form instructions = %q, want the server's limit of 12", instructions)
	}
	_, err := f.chooser().RegisterAs(t.Context(), alice, "alice_is_so_long")
	if condition(err) != gateways.NotAcceptable || !strings.Contains(err.Error(), "has 16 characters; the IRC server allows nicks of up to 12") {
		t.Errorf("RegisterAs(a nick of 16) = %v, want not-acceptable naming the limit of 12", err)
	}
	if n, err := f.reg.Lookup(t.Context(), alice); err != nil || n != "" {
		t.Errorf("after the refusal the user has nick %q (%v), want none", n, err)
	}
	if _, err := f.chooser().RegisterAs(t.Context(), alice, "alice_twelve"); err != nil {
		t.Errorf("RegisterAs(a nick of 12) = %v", err)
	}
	e, err := f.kv.Get(t.Context(), "irc.server.nicklen")
	if err != nil || string(e.Value()) != "12" {
		t.Fatalf("kept NICKLEN = %v, %v; want 12", e, err)
	}
	// A second adapter on the same bucket knows the limit with the server
	// gone: it is read from the bucket, not probed.
	cfg := ircConfig(srv)
	cfg.Server = proctest.FreeAddr(t) // reserved, nothing listens there
	a, err := irc.New(gateways.Params{Name: "irc", Domain: domain, Config: cfg, Registrations: f.kv})
	if err != nil {
		t.Fatal(err)
	}
	chooser := a.(gateways.RegistrarProvider).Registrar().(gateways.AddressChooser)
	if _, instructions := chooser.AddressField(); !strings.Contains(instructions, "up to 12 letters") {
		t.Errorf("second adapter's form = %q, want the kept limit of 12", instructions)
	}
}
