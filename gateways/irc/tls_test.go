package irc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/irc"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

// tlsConfig is the adapter's configuration for srv's TLS port.
func tlsConfig(srv *irctest.Server) *irc.Config {
	cfg := ircConfig(srv)
	cfg.Server, cfg.TLS = srv.TLSAddr(), true
	return cfg
}

// A user connected over TLS talks with bob, a plain-text client of the
// same server; ngircd confirms the user is on TLS.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{TLS: true})
	bob := srv.Dial(t, "bob")

	tests := []struct {
		name, nick string
		config     func(t *testing.T) *irc.Config
		afterNew   func(t *testing.T, cfg *irc.Config)
	}{
		{
			name: "tls_ca_file", nick: "alice",
			config: func(t *testing.T) *irc.Config {
				// A copy, removed once the adapter is built: New reads it,
				// connections do not.
				pem, err := os.ReadFile(srv.CACertFile())
				if err != nil {
					t.Fatal(err)
				}
				cfg := tlsConfig(srv)
				cfg.TLSCAFile = filepath.Join(t.TempDir(), "ca.pem")
				if err := os.WriteFile(cfg.TLSCAFile, pem, 0o644); err != nil {
					t.Fatal(err)
				}
				return cfg
			},
			afterNew: func(t *testing.T, cfg *irc.Config) {
				if err := os.Remove(cfg.TLSCAFile); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "tls_insecure_skip_verify", nick: "alice2",
			config: func(*testing.T) *irc.Config {
				cfg := tlsConfig(srv)
				cfg.TLSInsecureSkipVerify = true
				return cfg
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.config(t)
			f := setup(t, srv, cfg, map[string]string{alice: tt.nick})
			if tt.afterNew != nil {
				tt.afterNew(t, cfg)
			}
			f.start(t)

			send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: "hi over TLS"})
			bob.Wait(t, wait, privmsg(tt.nick, "bob", "hi over TLS"))
			mark := f.host.mark()
			bob.Privmsg(t, tt.nick, "hi back in plain text")
			i := f.host.waitFrom(t, mark, "bob's reply", dm("bob", "hi back in plain text"))
			if to := f.host.all()[i].in.To; to != alice {
				t.Errorf("reply delivered to %q, want %s", to, alice)
			}
			// ngircd's WHOIS says who is on TLS (275): the adapter did not
			// reach the server some other way.
			bob.Send(t, "WHOIS "+tt.nick)
			bob.Wait(t, wait, func(l irctest.Line) bool {
				return l.Command == "275" && l.Param(1) == tt.nick
			})
		})
	}
}

// A certificate the adapter does not trust fails the connection: Send
// returns a retryable error that says so, the log too, and Stop leaves
// nothing running. Not parallel: it counts the package's goroutines.
func TestTLSUntrusted(t *testing.T) {
	srv := irctest.Start(t, irctest.Options{TLS: true})
	otherCA := writeCA(t, t.TempDir(), "other-ca.pem")

	tests := []struct {
		name   string
		caFile string
		want   string // in the error, after the verification's own words
	}{
		{"system roots", "", "a CA the system trusts (tls_ca_file names a private one)"},
		{"another CA", otherCA, "a CA of tls_ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsConfig(srv)
			cfg.TLSCAFile = tt.caFile
			var logs syncBuffer
			f := setupLogged(t, srv, cfg, map[string]string{alice: "alice"}, &logs)
			f.start(t) // returns once the first attempt failed

			_, err := f.a.Send(context.Background(), gateways.Outbound{ID: "x", From: aliceR, To: "bob", Body: "hi", Attempt: 1})
			if !errors.Is(err, gateways.ErrNotConnected) || errors.Is(err, gateways.ErrPermanent) {
				t.Errorf("Send = %v, want a retryable ErrNotConnected", err)
			}
			for _, want := range []string{"certificate signed by unknown authority", tt.want} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Send = %v, want it to say %q", err, want)
				}
			}
			// The warning may follow Start's return by a moment.
			deadline := time.Now().Add(wait)
			for !strings.Contains(logs.String(), tt.want) {
				if time.Now().After(deadline) {
					t.Errorf("the log does not mention the certificate:\n%s", logs.String())
					break
				}
				time.Sleep(10 * time.Millisecond)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.a.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
			checkNoGoroutines(t)
		})
	}
	// The server saw handshakes, never a user.
	if strings.Contains(srv.Log(), `User "alice!`) {
		t.Errorf("the server registered alice:\n%s", srv.Log())
	}
}
