package twilio_test

import (
	"context"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/gateways/gatewaytest"
	"github.com/xmppgw/xmppgw/gateways/twilio"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
)

// TestFeatures: SMS carries corrections and replies, as text, and nothing
// else. A phone has no reactions, retractions, read markers or typing to
// send them to: implementing one of those interfaces would have the
// component offer clients what no phone gets.
func TestFeatures(t *testing.T) {
	var a gateways.Adapter = (*twilio.Adapter)(nil)
	if got, want := gateways.FeaturesOf(a), (gateways.Features{Corrections: true, Replies: true}); got != want {
		t.Errorf("FeaturesOf(twilio) = %+v, want %+v", got, want)
	}
	for name, implements := range map[string]bool{
		"gateways.Reactor":      is[gateways.Reactor](a),
		"gateways.Retractor":    is[gateways.Retractor](a),
		"gateways.MarkerSender": is[gateways.MarkerSender](a),
		"gateways.Typer":        is[gateways.Typer](a),
	} {
		if implements {
			t.Errorf("the twilio adapter implements %s: SMS cannot carry it", name)
		}
	}
	if !is[gateways.Editor](a) || !is[gateways.Replier](a) {
		t.Error("the twilio adapter must implement gateways.Editor and gateways.Replier")
	}
}

func is[T any](a gateways.Adapter) bool {
	_, ok := a.(T)
	return ok
}

// TestSendReturnsSIDAndText: what Send says a message became is the SID
// Twilio gave it, and the text as the phone got it (which the gateway
// remembers for the phone's reactions): without the media URL a client
// repeats as the body.
func TestSendReturnsSIDAndText(t *testing.T) {
	e := start(t, 2*time.Second)
	media := "https://upload.example/cat.jpg"
	tests := []struct {
		name string
		m    gateways.Outbound
		text string
	}{
		{"text", outbound("s-1", "See you at 7"), "See you at 7"},
		{"media with a caption", withMedia(outbound("s-2", "look"), media), "look"},
		{"media, its URL as the body", withMedia(outbound("s-3", media), media), ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent, err := e.a.Send(t.Context(), tt.m)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := e.tw.WaitMessages(t, i+1, 5*time.Second)
			got := msgs[i]
			if got.Body != tt.text {
				t.Errorf("Twilio got body %q, want %q", got.Body, tt.text)
			}
			if want := (gateways.Sent{IDs: []string{got.SID}, Text: tt.text}); !sameSent(sent, want) {
				t.Errorf("Send returned %+v, want %+v", sent, want)
			}
		})
	}
}

func withMedia(m gateways.Outbound, urls ...string) gateways.Outbound {
	for _, u := range urls {
		m.Media = append(m.Media, gateways.Media{URL: u, Type: "image/jpeg"})
	}
	return m
}

// TestEdit: a phone cannot edit a text, so a correction reaches it as a
// new SMS, the corrected text after correction_prefix (issue #13: "* " by
// default). What Edit returns is the SID and the text the user wrote.
func TestEdit(t *testing.T) {
	tests := []struct {
		name   string
		prefix *string // nil: the default
		want   string
	}{
		{"default prefix", nil, "* see you at 8"},
		{"custom prefix", ptr("Correction: "), "Correction: see you at 8"},
		{"no prefix", ptr(""), "see you at 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, 2*time.Second, func(s *setup) {
				if tt.prefix != nil {
					s.cfg.CorrectionPrefix = *tt.prefix
				}
			})
			ed := e.a.(gateways.Editor)
			if _, err := e.a.Send(t.Context(), outbound("orig", "see you at 7")); err != nil {
				t.Fatal(err)
			}
			orig := e.tw.WaitMessages(t, 1, 5*time.Second)[0]
			sent, err := ed.Edit(t.Context(), gateways.Edit{
				Outbound: outbound("fix", "see you at 8"),
				Target:   gateways.Ref{ID: "orig", NetworkIDs: []string{orig.SID}, Text: "see you at 7"},
			})
			if err != nil {
				t.Fatalf("Edit: %v", err)
			}
			msgs := e.tw.WaitMessages(t, 2, 5*time.Second)
			if msgs[1].Body != tt.want || msgs[1].To != contact || msgs[1].From != poolNumber {
				t.Errorf("the correction reached Twilio as %q from %s to %s, want %q from %s to %s",
					msgs[1].Body, msgs[1].From, msgs[1].To, tt.want, poolNumber, contact)
			}
			// Remembered: the text the user wrote, which the phone's
			// reactions quote after the prefix.
			if want := (gateways.Sent{IDs: []string{msgs[1].SID}, Text: "see you at 8"}); !sameSent(sent, want) {
				t.Errorf("Edit returned %+v, want %+v", sent, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestEditRedelivered: a correction is a message of its own for the
// attempt records: redelivered after Twilio accepted it (the bus did not
// hear), it is recognised at Twilio and not sent twice; a correction with
// the same text but another bus key is another message.
func TestEditRedelivered(t *testing.T) {
	e := start(t, 300*time.Millisecond)
	ed := e.a.(gateways.Editor)
	fix := gateways.Edit{Outbound: outbound("fix", "see you at 8"), Target: gateways.Ref{ID: "orig"}}
	first, err := ed.Edit(t.Context(), fix)
	if err != nil {
		t.Fatalf("Edit: %v", err)
	}
	fix.Attempt = 2
	again, err := ed.Edit(t.Context(), fix)
	if err != nil {
		t.Fatalf("Edit, redelivered: %v", err)
	}
	if n := len(e.tw.Messages()); n != 1 || e.tw.Requests() != 1 {
		t.Fatalf("Twilio has %d messages after %d create calls, want 1 and 1: the redelivered correction was sent again", n, e.tw.Requests())
	}
	if !sameSent(first, again) || len(first.IDs) != 1 {
		t.Errorf("the redelivery returned %+v, the first delivery %+v: want the same SID and text", again, first)
	}
	other := gateways.Edit{Outbound: outbound("fix-2", "see you at 8"), Target: gateways.Ref{ID: "orig"}}
	if _, err := ed.Edit(t.Context(), other); err != nil {
		t.Fatalf("Edit, another correction: %v", err)
	}
	if msgs := e.tw.WaitMessages(t, 2, 5*time.Second); msgs[1].Body != "* see you at 8" {
		t.Errorf("the second correction reached Twilio as %q", msgs[1].Body)
	}
}

// TestSendReply: a reply reaches the phone as the user's text under one
// line quoting what the user's client quoted, shortened to 60 characters.
// What SendReply returns is the SID and the text the user wrote.
func TestSendReply(t *testing.T) {
	const long = "The meeting moves to the big room on the third floor because the projector there works"
	tests := []struct {
		name    string
		replyTo *gateways.Ref
		text    string
		want    string
	}{
		{"short quote", &gateways.Ref{ID: "m1", Text: "See you at 7"}, "Make it 8",
			"> See you at 7\nMake it 8"},
		{"quote on several lines", &gateways.Ref{ID: "m1", Text: "See you\n\n  at 7 \n"}, "ok",
			"> See you at 7\nok"},
		// Cut after a word; "..." keeps the SMS in GSM-7.
		{"long quote", &gateways.Ref{ID: "m1", Text: long}, "Which room?",
			"> The meeting moves to the big room on the third floor...\nWhich room?"},
		// The message is UCS-2 anyway (the emoji): "…" costs nothing more.
		{"long quote, UCS-2 text", &gateways.Ref{ID: "m1", Text: long}, "Which room? 🤔",
			"> The meeting moves to the big room on the third floor…\nWhich room? 🤔"},
		{"long quote without a space near the cut", &gateways.Ref{ID: "m1", Text: "https://example.com/" + strings.Repeat("x", 60)}, "this one",
			"> https://example.com/" + strings.Repeat("x", 37) + "...\nthis one"},
		{"quote of exactly 60 characters", &gateways.Ref{ID: "m1", Text: strings.Repeat("y", 60)}, "ok",
			"> " + strings.Repeat("y", 60) + "\nok"},
		{"empty quote", &gateways.Ref{ID: "m1", NetworkIDs: []string{"SM1"}}, "Make it 8", "Make it 8"},
		{"blank quote", &gateways.Ref{ID: "m1", Text: " \n "}, "Make it 8", "Make it 8"},
		{"no reference", nil, "Make it 8", "Make it 8"},
	}
	e := start(t, 2*time.Second)
	rp := e.a.(gateways.Replier)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := outbound("r-"+tt.name, tt.text)
			m.ReplyTo = tt.replyTo
			sent, err := rp.SendReply(t.Context(), m)
			if err != nil {
				t.Fatalf("SendReply: %v", err)
			}
			got := e.tw.WaitMessages(t, i+1, 5*time.Second)[i]
			if got.Body != tt.want {
				t.Errorf("the reply reached Twilio as\n%q\nwant\n%q", got.Body, tt.want)
			}
			if quote, _, ok := strings.Cut(got.Body, "\n"); ok && len([]rune(strings.TrimPrefix(quote, "> "))) > 60 {
				t.Errorf("quote line %q is over 60 characters", quote)
			}
			if want := (gateways.Sent{IDs: []string{got.SID}, Text: tt.text}); !sameSent(sent, want) {
				t.Errorf("SendReply returned %+v, want %+v", sent, want)
			}
		})
	}
}

// TestReplySegments: max_segments counts the SMS as sent, quote included;
// the refusal says so.
func TestReplySegments(t *testing.T) {
	e := start(t, 2*time.Second, func(s *setup) { s.cfg.MaxSegments = 1 })
	text := strings.Repeat("a", 150) // one segment alone, two under the quote
	if _, err := e.a.Send(t.Context(), outbound("plain", text)); err != nil {
		t.Fatalf("Send of %d GSM-7 characters with max_segments 1: %v", len(text), err)
	}
	m := outbound("reply", text)
	m.ReplyTo = &gateways.Ref{ID: "m1", Text: "See you at 7"}
	_, err := e.a.(gateways.Replier).SendReply(t.Context(), m)
	var ge *gateways.Error
	if !errors.As(err, &ge) || ge.Condition != gateways.NotAcceptable || !ge.Permanent || !strings.Contains(ge.Text, "with the quote") {
		t.Fatalf("SendReply over max_segments = %v, want a permanent not-acceptable naming the quote", err)
	}
	if n := len(e.tw.Messages()); n != 1 {
		t.Errorf("Twilio has %d messages, want 1: the refused reply went out", n)
	}
}

// The user's recent messages to contact, newest first, as the gateway
// remembers them; "target" is the one the phone reacts to below.
var recent = []gateways.RecentMessage{
	{ID: "newest", NetworkIDs: []string{"SMa"}, Text: "Something else"},
	{ID: "target", NetworkIDs: []string{"SMb"}, Text: "See you at 7"},
	{ID: "long", NetworkIDs: []string{"SMc"}, Text: "See you at the usual place, the one by the river"},
	{ID: "older-same-text", NetworkIDs: []string{"SMd"}, Text: "See you at 7"},
}

// phrases are the phones' renderings of reactions (package tapback's
// table), with the quote left to fill in.
var phrases = []struct {
	prefix  string
	emoji   string
	removed bool
}{
	{"Liked ", "👍", false},
	{"Loved ", "❤️", false},
	{"Laughed at ", "😂", false},
	{"Emphasized ", "‼️", false},
	{"Emphasised ", "‼️", false},
	{"Questioned ", "❓", false},
	{"Disliked ", "👎", false},
	{"Reacted 🥹 to ", "🥹", false},
	{"Reacted 👍🏽 to ", "👍🏽", false},
	{"Removed a like from ", "👍", true},
	{"Removed a heart from ", "❤️", true},
	{"Removed a laugh from ", "😂", true},
	{"Removed an exclamation from ", "‼️", true},
	{"Removed a question mark from ", "❓", true},
	{"Removed a dislike from ", "👎", true},
	{"Removed 🥹 from ", "🥹", true},
	{"Removed a 🎉 from ", "🎉", true},
}

// smsURL is where Twilio posts inbound messages for the "sms" gateway.
func (e *env) smsURL() string { return e.url + "/twilio/sms/sms" }

// TestPhoneReactions: a phone's text rendering of a reaction to one of the
// user's recent messages, through the signed webhook, reaches the user as
// a reaction to that message (the newest with the quoted text), not as a
// message.
func TestPhoneReactions(t *testing.T) {
	e := start(t, 2*time.Second)
	e.host.SetRecent(user, contact, recent)
	quotes := []struct {
		name, quote, target string
	}{
		{"curly", "“See you at 7”", "target"},
		{"straight", `"See you at 7"`, "target"},
		{"truncated", "“See you at the usual…”", "long"},
		{"truncated without closing quote", `"See you at the usual...`, "long"},
	}
	for _, p := range phrases {
		for _, q := range quotes {
			body := p.prefix + q.quote
			t.Run(q.name+"/"+body, func(t *testing.T) {
				before := len(e.host.Reactions())
				params := e.tw.InboundSMS(contact, poolNumber, body)
				if code, answer := e.tw.PostWebhook(t, e.smsURL(), params); code != 200 {
					t.Fatalf("webhook answered %d %s", code, answer)
				}
				got := e.host.Reactions()
				if len(got) != before+1 {
					t.Fatalf("%d reactions after the webhook, want %d", len(got), before+1)
				}
				want := gateways.InboundReaction{User: gateways.BareJID(user), Contact: contact, TargetXMPP: q.target,
					ProviderID: params.Get("MessageSid"), Fallback: body}
				if p.removed {
					want.Remove = p.emoji
				} else {
					want.Full, want.Emoji = true, []string{p.emoji}
				}
				if !reflect.DeepEqual(got[before], want) {
					t.Errorf("host.React got\n%+v\nwant\n%+v", got[before], want)
				}
			})
		}
	}
	if d := e.host.Delivered(); len(d) != 0 {
		t.Errorf("reactions were also delivered as messages: %+v", d)
	}
}

// TestPhoneReactionsToWhatThePhoneGot: a phone quotes what it received —
// a correction after its prefix, a reply under its quote line — while the
// gateway remembers what the user wrote (Sent.Text, as the runner records
// it: a correction under the id of the message corrected). A reaction
// quoting any of them, whole or cut short, is a reaction to that message.
func TestPhoneReactionsToWhatThePhoneGot(t *testing.T) {
	for _, prefix := range []string{"* ", "Correction: "} {
		t.Run(prefix, func(t *testing.T) {
			e := start(t, 2*time.Second, func(s *setup) { s.cfg.CorrectionPrefix = prefix })
			ctx := t.Context()
			sent0, err := e.a.Send(ctx, outbound("orig", "see you at 7"))
			if err != nil {
				t.Fatal(err)
			}
			sentE, err := e.a.(gateways.Editor).Edit(ctx, gateways.Edit{
				Outbound: outbound("fix", "see you at 8"), Target: gateways.Ref{ID: "orig", NetworkIDs: sent0.IDs, Text: sent0.Text}})
			if err != nil {
				t.Fatal(err)
			}
			reply := outbound("reply", "Make it 9")
			reply.ReplyTo = &gateways.Ref{ID: "their-1", Text: "Are we still on for tonight?"}
			sentR, err := e.a.(gateways.Replier).SendReply(ctx, reply)
			if err != nil {
				t.Fatal(err)
			}
			e.host.SetRecent(user, contact, []gateways.RecentMessage{
				{ID: "reply", NetworkIDs: sentR.IDs, Text: sentR.Text},
				{ID: "orig", NetworkIDs: sentE.IDs, Text: sentE.Text},
				{ID: "orig", NetworkIDs: sent0.IDs, Text: sent0.Text},
			})
			msgs := e.tw.WaitMessages(t, 3, 5*time.Second)
			for i, target := range []string{"orig", "orig", "reply"} {
				got := msgs[i].Body
				rs := []rune(got)
				for _, body := range []string{
					"Liked “" + got + "”",
					`Removed a heart from "` + got + `"`,
					"Loved “" + string(rs[:len(rs)-2]) + "…”",
				} {
					before := len(e.host.Reactions())
					params := e.tw.InboundSMS(contact, poolNumber, body)
					if code, answer := e.tw.PostWebhook(t, e.smsURL(), params); code != 200 {
						t.Fatalf("webhook answered %d %s", code, answer)
					}
					r := e.host.Reactions()
					if len(r) != before+1 || r[before].TargetXMPP != target {
						t.Errorf("%q (the phone got %q): reactions %+v, want one more, on %s", body, got, r[before:], target)
					}
				}
			}
			if d := e.host.Delivered(); len(d) != 0 {
				t.Errorf("reactions were delivered as text: %+v", d)
			}
		})
	}
}

// recentFails is a host whose record of recent messages cannot be read.
type recentFails struct{ *gatewaytest.Host }

func (recentFails) Recent(context.Context, string, string) ([]gateways.RecentMessage, error) {
	return nil, errors.New("id map: timeout")
}

// e0 is the recording host of the env being set up.
func e0(s *setup) *gatewaytest.Host { return s.host.(*gatewaytest.Host) }

// reactFails is a host that cannot store a reaction.
type reactFails struct{ *gatewaytest.Host }

func (reactFails) React(context.Context, gateways.InboundReaction) error {
	return errors.New("bus: no responders")
}

// TestPhoneReactionsAsText: what only looks like a phone's reaction is an
// ordinary message, never dropped: a quote of no recent message, a
// reaction when the recent messages cannot be read, an MMS.
func TestPhoneReactionsAsText(t *testing.T) {
	t.Run("no matching message", func(t *testing.T) {
		e := start(t, 2*time.Second)
		e.host.SetRecent(user, contact, recent)
		for _, body := range []string{"Liked “See you at 8”", "Loved “See you at the usual place, the one by the sea”", "Liked an image"} {
			e.deliveredAsText(t, e.tw.InboundSMS(contact, poolNumber, body), 0)
		}
	})
	t.Run("no recent messages", func(t *testing.T) {
		e := start(t, 2*time.Second)
		e.deliveredAsText(t, e.tw.InboundSMS(contact, poolNumber, "Liked “See you at 7”"), 0)
	})
	t.Run("another contact's conversation", func(t *testing.T) {
		e := start(t, 2*time.Second)
		e.host.SetRecent(user, "+15557654321", recent)
		e.deliveredAsText(t, e.tw.InboundSMS(contact, poolNumber, "Liked “See you at 7”"), 0)
	})
	t.Run("Recent fails", func(t *testing.T) {
		e := start(t, 2*time.Second, func(s *setup) { s.host = recentFails{e0(s)} })
		e.deliveredAsText(t, e.tw.InboundSMS(contact, poolNumber, "Liked “See you at 7”"), 0)
	})
	// The phone put the reply on one line, or kept only the start of its
	// quote line: what it quotes is not the message replied to.
	t.Run("reply quoted without its line break", func(t *testing.T) {
		e := start(t, 2*time.Second)
		e.host.SetRecent(user, contact, []gateways.RecentMessage{{ID: "reply", Text: "Make it 9"}, {ID: "theirs-quoted", Text: "Are we still on for tonight?"}})
		for _, body := range []string{"Liked “> Are we still on for tonight? Make it 9”", "Liked “> Are we still…”"} {
			e.deliveredAsText(t, e.tw.InboundSMS(contact, poolNumber, body), 0)
		}
	})
	t.Run("MMS", func(t *testing.T) {
		e := start(t, 2*time.Second)
		e.host.SetRecent(user, contact, append([]gateways.RecentMessage{{ID: "x", Text: "x"}}, recent...))
		media := e.tw.AddMedia("image/jpeg", []byte("\xff\xd8\xff\xe0 a photo"))
		e.deliveredAsText(t, e.tw.InboundSMS(contact, poolNumber, "Liked “x”", media), 1)
	})
}

// deliveredAsText posts params to the inbound webhook, which must deliver
// them as an ordinary message with media items, not a reaction.
func (e *env) deliveredAsText(t *testing.T, params url.Values, media int) {
	t.Helper()
	before := len(e.host.Delivered())
	if code, answer := e.tw.PostWebhook(t, e.smsURL(), params); code != 200 {
		t.Fatalf("webhook for %q answered %d %s", params.Get("Body"), code, answer)
	}
	got := e.host.Delivered()
	if len(got) != before+1 {
		t.Fatalf("%q: %d messages delivered, want %d", params.Get("Body"), len(got)-before, 1)
	}
	in := got[before]
	if in.Body != params.Get("Body") || in.From != contact || in.To != gateways.BareJID(user) ||
		in.ProviderID != params.Get("MessageSid") || len(in.Media) != media {
		t.Errorf("delivered %+v for %q with %d media", in, params.Get("Body"), media)
	}
	if r := e.host.Reactions(); len(r) != 0 {
		t.Errorf("%q became a reaction: %+v", params.Get("Body"), r)
	}
}

// TestPhoneReactionWebhook: a reaction keeps the webhook's guarantees: an
// unsigned one is refused and stored nowhere; one that cannot be stored is
// answered 503, so Twilio keeps it, not 200; a redelivery carries the same
// MessageSid, by which the gateway drops the repeat.
func TestPhoneReactionWebhook(t *testing.T) {
	body := "Liked “See you at 7”"
	t.Run("unsigned", func(t *testing.T) {
		e := start(t, 2*time.Second)
		e.host.SetRecent(user, contact, recent)
		params := e.tw.InboundSMS(contact, poolNumber, body)
		if code, _ := twiliotest.PostSigned(t, e.smsURL(), "bm90IGEgc2lnbmF0dXJl", params); code != 403 {
			t.Errorf("unsigned reaction answered %d, want 403", code)
		}
		if r, d := e.host.Reactions(), e.host.Delivered(); len(r)+len(d) != 0 {
			t.Errorf("an unsigned webhook reached the host: %+v %+v", r, d)
		}
	})
	t.Run("not stored", func(t *testing.T) {
		e := start(t, 2*time.Second, func(s *setup) { s.host = reactFails{e0(s)} })
		e.host.SetRecent(user, contact, recent)
		if code, _ := e.tw.PostWebhook(t, e.smsURL(), e.tw.InboundSMS(contact, poolNumber, body)); code != 503 {
			t.Errorf("a reaction the host could not store answered %d, want 503", code)
		}
		if d := e.host.Delivered(); len(d) != 0 {
			t.Errorf("a reaction that could not be stored was delivered as text instead: %+v", d)
		}
	})
	t.Run("redelivered", func(t *testing.T) {
		e := start(t, 2*time.Second)
		e.host.SetRecent(user, contact, recent)
		params := e.tw.InboundSMS(contact, poolNumber, body)
		for range 2 {
			if code, answer := e.tw.PostWebhook(t, e.smsURL(), params); code != 200 {
				t.Fatalf("webhook answered %d %s", code, answer)
			}
		}
		r := e.host.Reactions()
		if len(r) != 2 || r[0].ProviderID != params.Get("MessageSid") || !reflect.DeepEqual(r[0], r[1]) {
			t.Errorf("a redelivered reaction gave %+v, want twice the same, ProviderID %s", r, params.Get("MessageSid"))
		}
	})
}
