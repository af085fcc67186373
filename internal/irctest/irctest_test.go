package irctest_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/irctest"
)

const wait = 5 * time.Second

func privmsgFrom(nick, text string) func(irctest.Line) bool {
	return func(l irctest.Line) bool {
		return l.Command == "PRIVMSG" && l.Nick() == nick && l.Text() == text
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	began := time.Now()
	srv := irctest.Start(t, irctest.Options{})
	t.Logf("ngircd started in %v on %s", time.Since(began), srv.Addr())

	alice := srv.Dial(t, "alice_has_a_long_nick")
	t.Logf("alice %v", time.Since(began))
	bob := srv.Dial(t, "bob")
	t.Logf("bob %v", time.Since(began))

	alice.Privmsg(t, "bob", "hi bob")
	bob.Wait(t, wait, privmsgFrom("alice_has_a_long_nick", "hi bob"))

	alice.Join(t, "#test")
	bob.Join(t, "#test")
	alice.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "JOIN" && l.Nick() == "bob" })
	bob.Privmsg(t, "#test", "hello, channel")
	l := alice.Wait(t, wait, privmsgFrom("bob", "hello, channel"))
	if l.Param(0) != "#test" {
		t.Errorf("channel message to %q, want #test", l.Param(0))
	}

	t.Logf("before quit %v", time.Since(began))
	bob.Quit(t, "bye now")
	t.Logf("after quit %v", time.Since(began))
	l = alice.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "QUIT" && l.Nick() == "bob" })
	if !strings.Contains(l.Text(), "bye now") {
		t.Errorf("quit reason %q, want it to contain %q", l.Text(), "bye now")
	}

	t.Run("restart", func(t *testing.T) {
		began := time.Now()
		srv.Restart(t)
		t.Logf("ngircd restarted in %v", time.Since(began))
		select {
		case <-alice.Done():
		case <-time.After(wait):
			t.Fatal("a client's connection survived the restart")
		}
		carol := srv.Dial(t, "carol")
		dave := srv.Dial(t, "dave")
		carol.Privmsg(t, "dave", "after restart")
		dave.Wait(t, wait, privmsgFrom("carol", "after restart"))
	})
	if !strings.Contains(srv.Log(), "ready") {
		t.Errorf("the log does not show the server starting:\n%s", srv.Log())
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{Password: "s3cret", Name: "pw.example.test"})
	bob := srv.Dial(t, "bob") // sends the password
	bob.Send(t, "VERSION")
	bob.Wait(t, wait, func(l irctest.Line) bool { return l.Prefix == "pw.example.test" })

	// Without the password the server refuses to register the client.
	conn, err := net.DialTimeout("tcp", srv.Addr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write([]byte("NICK nopass\r\nUSER nopass 0 * :x\r\n")); err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(conn) // until the server closes the connection
	if !strings.HasPrefix(string(all), "ERROR ") || strings.Contains(string(all), " 001 ") {
		t.Errorf("registering without the password: got\n%s\nwant an ERROR and no welcome", all)
	}
}
