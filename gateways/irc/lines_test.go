package irc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/irctest"
)

// longBody is about n bytes of words mixing one- to four-byte characters,
// with some words longer than a line so that splitting must also happen
// between characters rather than at a space.
func longBody(n int) string {
	words := []string{"grüße", "€uro", "日本語テキスト", "emoji😀😃", "plain", "ascii", "ñandú", strings.Repeat("ø", 300)}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[i%len(words)])
	}
	return b.String()
}

// covered reports how much of body parts reproduce in order, where a
// space at a cut may have been dropped; ok is false on a mismatch.
func covered(body string, parts []string) (n int, ok bool) {
	for i, p := range parts {
		if i > 0 && !strings.HasPrefix(body[n:], p) && strings.HasPrefix(body[n:], " ") {
			n++ // the space where the line was cut
		}
		if !strings.HasPrefix(body[n:], p) {
			return n, false
		}
		n += len(p)
	}
	return n, true
}

// collect gathers the texts of PRIVMSGs from nick to target until they
// make up body, checking every relayed line against IRC's limit and the
// text against the body.
func collect(t *testing.T, c *irctest.Client, nick, target, body string, unwrap func(string) (string, bool)) []string {
	t.Helper()
	var parts []string
	longest := 0
	for {
		l := c.Wait(t, wait, func(l irctest.Line) bool {
			return l.Command == "PRIVMSG" && l.Nick() == nick && l.Param(0) == target
		})
		if len(l.Raw)+2 > 512 {
			t.Errorf("relayed line is %d bytes with CR LF, over 512", len(l.Raw)+2)
		}
		longest = max(longest, len(l.Raw)+2)
		if !utf8.ValidString(l.Text()) {
			t.Errorf("line %d is not valid UTF-8: cut inside a character", len(parts))
		}
		text, ok := unwrap(l.Text())
		if !ok {
			t.Fatalf("line %d: unexpected %q", len(parts), l.Text())
		}
		parts = append(parts, text)
		n, ok := covered(body, parts)
		if !ok {
			t.Fatalf("line %d does not continue the text: got %q after %d bytes of %d", len(parts)-1, text, n, len(body))
		}
		if n == len(body) {
			// The prefix the server adds was learned, not guessed: lines
			// are filled (less a character cut short).
			if len(parts) > 1 && longest < 508 {
				t.Errorf("the longest line is %d bytes: lines are not filled up to 512", longest)
			}
			return parts
		}
	}
}

func plain(s string) (string, bool) { return s, true }

func action(s string) (string, bool) {
	s, ok := strings.CutPrefix(s, "\x01ACTION ")
	if !ok || !strings.HasSuffix(s, "\x01") {
		return "", false
	}
	return strings.TrimSuffix(s, "\x01"), true
}

func TestLongMessages(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	bob := srv.Dial(t, "bob")
	bob.Join(t, "#long")
	join(t, f, aliceR, "#long")

	body := longBody(2000)
	tests := []struct {
		name, target string
		groupchat    bool
	}{
		{"private", "bob", false},
		{"channel", "#long", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.host.mark()
			send(t, f.a, gateways.Outbound{From: aliceR, To: tt.target, Body: body, Groupchat: tt.groupchat})
			parts := collect(t, bob, "alice", tt.target, body, plain)
			if len(parts) < 4 {
				t.Errorf("%d lines for %d bytes, want at least 4", len(parts), len(body))
			}
			if tt.groupchat {
				// One reflection, the whole body, as the user sent it.
				f.host.waitFrom(t, mark, "the reflection", groupchat("#long", "alice", body))
			}
		})
	}

	t.Run("newlines", func(t *testing.T) {
		send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: "one\ntwo\r\n\nthree\n"})
		for _, want := range []string{"one", "two", "three"} {
			bob.Wait(t, wait, privmsg("alice", "bob", want))
		}
	})

	t.Run("long action", func(t *testing.T) {
		body := longBody(700)
		send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: "/me " + body})
		collect(t, bob, "alice", "bob", body, action)
	})
}

// Many lines at once go out at the pace flood control allows; the server
// never disconnects the user for flooding and every line arrives in order.
func TestFlood(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t, irctest.Options{})
	f := started(t, srv)
	bob := srv.Dial(t, "bob")

	const n = 50
	var lines []string
	for i := range n {
		// Long lines: ngircd counts bytes as well as lines.
		lines = append(lines, fmt.Sprintf("line %02d %s", i, strings.Repeat("x", 380)))
	}
	began := time.Now()
	send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: strings.Join(lines, "\n")})
	for i := range n {
		l := bob.Wait(t, 2*wait, func(l irctest.Line) bool { return l.Command == "PRIVMSG" && l.Nick() == "alice" })
		if l.Text() != lines[i] {
			t.Fatalf("line %d: got %.20q…, want %.20q…", i, l.Text(), lines[i])
		}
	}
	t.Logf("%d lines in %v", n, time.Since(began).Round(time.Millisecond))
	// Still connected: no notice about a lost connection, and messages go
	// both ways.
	send(t, f.a, gateways.Outbound{From: aliceR, To: "bob", Body: "still here"})
	bob.Wait(t, wait, privmsg("alice", "bob", "still here"))
	mark := f.host.mark()
	bob.Privmsg(t, "alice", "me too")
	f.host.waitFrom(t, mark, "bob's answer", dm("bob", "me too"))
	for _, e := range f.host.all() {
		if e.in != nil && e.in.From == "" {
			t.Errorf("unexpected notice: %s", e)
		}
	}
	if strings.Contains(srv.Log(), "Excess Flood") || strings.Contains(srv.Log(), "exhausted") {
		t.Errorf("the server complained about flooding:\n%s", srv.Log())
	}
}
