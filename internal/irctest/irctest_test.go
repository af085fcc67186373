package irctest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
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

func TestTLS(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{TLS: true})
	if srv.TLSAddr() == "" || srv.TLSAddr() == srv.Addr() {
		t.Fatalf("TLSAddr = %q, Addr = %q: want a second address", srv.TLSAddr(), srv.Addr())
	}
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(srv.CACertFile())
	if err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("CACertFile %q: %v, want a PEM certificate", srv.CACertFile(), err)
	}

	// The certificate names both loopback names and verifies against
	// itself; without it as a root, verification fails.
	tests := []struct {
		name, serverName string
		roots            *x509.CertPool
		wantErr          string
	}{
		{"IP", "127.0.0.1", roots, ""},
		{"localhost", "localhost", roots, ""},
		{"other name", "irc.test", roots, "certificate"},
		{"system roots", "127.0.0.1", nil, "certificate"},
	}
	for _, tt := range tests {
		t.Run("handshake/"+tt.name, func(t *testing.T) {
			d := tls.Dialer{Config: &tls.Config{ServerName: tt.serverName, RootCAs: tt.roots}}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", srv.TLSAddr())
			if err == nil {
				c.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("handshake: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("handshake = %v, want an error about the %s", err, tt.wantErr)
			}
		})
	}

	exchange := func(t *testing.T) {
		alice := srv.DialTLS(t, "alice")
		bob := srv.Dial(t, "bob") // plain text, same network
		alice.Privmsg(t, "bob", "over TLS")
		bob.Wait(t, wait, privmsgFrom("alice", "over TLS"))
		bob.Privmsg(t, "alice", "back")
		alice.Wait(t, wait, privmsgFrom("bob", "back"))
		// ngircd tells who is on TLS (275, "is connected via SSL").
		bob.Send(t, "WHOIS alice")
		bob.Wait(t, wait, func(l irctest.Line) bool { return l.Command == "275" && l.Param(1) == "alice" })
	}
	t.Run("exchange", exchange)

	t.Run("restart", func(t *testing.T) {
		tlsAddr, addr := srv.TLSAddr(), srv.Addr()
		srv.Restart(t)
		if srv.TLSAddr() != tlsAddr || srv.Addr() != addr {
			t.Errorf("addresses changed: %s %s, were %s %s", srv.Addr(), srv.TLSAddr(), addr, tlsAddr)
		}
		after, err := os.ReadFile(srv.CACertFile())
		if err != nil || string(after) != string(pem) {
			t.Errorf("the certificate changed across the restart (%v)", err)
		}
		exchange(t)
	})
}
