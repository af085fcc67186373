package e2e_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/internal/dendritetest"
	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// Matrix through the real binary (issue #14): a real Prosody, a real
// Dendrite, an XMPP user (alice, logged in to Matrix as @alice:localhost)
// and bob, a Matrix user driven by a mautrix client.
const (
	matrixDomain = "matrix.localhost"
	matrixWait   = 20 * time.Second
	bobJID       = "bob%localhost@" + matrixDomain
)

func matrixConfig(componentAddr string) string {
	return fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %%DATA%%
http:
  listen: %%HTTP%%
  public_url: http://%%HTTP%%
log:
  level: debug
gateways:
  matrix:
    domain: %s
    secret: secret
    adapter: matrix
    allowed_domains: [localhost]
    matrix:
      allow_private_homeservers: true
      sync_timeout: 5s
`, componentAddr, matrixDomain)
}

// matrixEnv is what both Matrix tests run on: a real Dendrite with
// @alice:localhost, a real Prosody, the gateway's binary and alice's XMPP
// client (not yet registered with the gateway).
type matrixEnv struct {
	hs                    *dendritetest.Server
	alice                 *xmpptest.Client
	g                     *gw
	dir, httpAddr, config string
}

func startMatrix(t *testing.T) *matrixEnv {
	t.Helper()
	e := &matrixEnv{hs: dendritetest.Start(t)}
	e.hs.Register(t, "alice", "matrixpass")
	srv := xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{matrixDomain: "secret"}})
	e.dir, e.httpAddr, e.config = t.TempDir(), proctest.FreeAddr(t), matrixConfig(srv.ComponentAddr())
	e.g = startGatewayIn(t, e.dir, e.httpAddr, e.config)
	e.g.waitHTTP("/readyz", http.StatusOK, `"ready"`, matrixWait)
	e.alice = xmpptest.Login(t, srv, "alice", "password")
	return e
}

// register submits the registration form as @alice:localhost and returns
// the answer.
func (e *matrixEnv) register(t *testing.T, id, password string) xmpptest.Stanza {
	t.Helper()
	e.alice.SendRaw(t, `<iq to='`+matrixDomain+`' type='set' id='`+id+`'><query xmlns='jabber:iq:register'>`+
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field>`+
		`<field var='homeserver'><value>`+e.hs.URL()+`</value></field>`+
		`<field var='username'><value>@alice:localhost</value></field>`+
		`<field var='password'><value>`+password+`</value></field></x></query></iq>`)
	return e.alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == id })
}

// unregister removes alice's registration and checks it was taken.
func (e *matrixEnv) unregister(t *testing.T) {
	t.Helper()
	e.alice.SendRaw(t, `<iq to='`+matrixDomain+`' type='set' id='unreg'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	if s := e.alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "unreg" }); s.Type != "result" {
		t.Fatalf("unregistering: %s", s.Raw)
	}
}

// killAndRestart kills the gateway (-9), runs meanwhile, and starts it
// again on the same data, for the rest of top.
func (e *matrixEnv) killAndRestart(top *testing.T, meanwhile func()) {
	_ = e.g.cmd.Process.Kill()
	<-e.g.exited
	meanwhile()
	e.g = startGatewayIn(top, e.dir, e.httpAddr, e.config)
	e.g.waitHTTP("/readyz", http.StatusOK, `"ready"`, matrixWait)
}

func TestMatrix(t *testing.T) {
	t.Parallel()
	env := startMatrix(t)
	hs, alice, httpAddr := env.hs, env.alice, env.httpAddr
	bob := hs.User(t, "bob")
	top := t

	t.Run("the registration form asks for a Matrix login", func(t *testing.T) {
		alice.SendRaw(t, `<iq to='`+matrixDomain+`' type='get' id='reg-get'><query xmlns='jabber:iq:register'/></iq>`)
		s := alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "reg-get" })
		for _, f := range []string{"var='homeserver'", "var='username'", "var='password'", "type='text-private'"} {
			if !strings.Contains(strings.ReplaceAll(s.Raw, `"`, `'`), f) {
				t.Errorf("the registration form lacks %s:\n%s", f, s.Raw)
			}
		}
	})
	if s := env.register(t, "reg-bad", "wrong"); s.Type != "error" || s.ErrorCondition != "not-acceptable" || strings.Contains(s.Raw, "wrong") {
		t.Errorf("a wrong password: %s, want not-acceptable without the password", s.Raw)
	}
	if s := env.register(t, "reg", "matrixpass"); s.Type != "result" {
		t.Fatalf("registering: %s", s.Raw)
	}
	if strings.Contains(env.g.log.String(), "matrixpass") {
		t.Errorf("the gateway logged the password")
	}
	t.Run("the ad-hoc commands speak of Matrix IDs", func(t *testing.T) {
		alice.SendRaw(t, `<iq to='`+matrixDomain+`' type='set' id='cmd-show'><command xmlns='http://jabber.org/protocol/commands' node='show-number' action='execute'/></iq>`)
		s := alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "cmd-show" })
		if s.Type != "result" || !strings.Contains(s.Raw, "Your Matrix ID is @alice:localhost") {
			t.Errorf("show-number: %s", s.Raw)
		}
		// A Matrix login needs its user's password: no administrator can
		// assign one, so the command does not exist (not merely forbidden).
		alice.SendRaw(t, `<iq to='`+matrixDomain+`' type='set' id='cmd-assign'><command xmlns='http://jabber.org/protocol/commands' node='assign-number' action='execute'/></iq>`)
		s = alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool { return s.Kind == "iq" && s.ID == "cmd-assign" })
		if s.Type != "error" || s.ErrorCondition != "item-not-found" {
			t.Errorf("assign-number on Matrix: %s, want item-not-found", s.Raw)
		}
	})

	// alice writes first: the gateway creates the direct chat.
	alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='m1'><body>hello bob</body><origin-id xmlns='urn:xmpp:sid:0' id='m1'/></message>`)
	m1 := bob.Wait(t, matrixWait, "alice's first message", func(e *event.Event) bool { return dendritetest.Body(e) == "hello bob" })
	room := m1.RoomID
	if m1.Sender != "@alice:localhost" {
		t.Errorf("sent by %s, want @alice:localhost", m1.Sender)
	}

	b1, err := bob.SendText(ctxFor(t), room, "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	in1 := waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "hi alice" })

	t.Run("disco lists every conversation feature", func(t *testing.T) {
		got := discoFeatures(t, alice, bobJID)
		for _, f := range conversationFeatures {
			if !slices.Contains(got, f) {
				t.Errorf("disco#info of %s lacks %s: %v", bobJID, f, got)
			}
		}
	})

	t.Run("latency", func(t *testing.T) {
		// XMPP → Matrix → XMPP through both real servers: alice writes,
		// bob's client sees it (syncing every 50 ms) and answers at once.
		var total []time.Duration
		for i := range 5 {
			body := fmt.Sprintf("ping %d", i)
			start := time.Now()
			alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='lat`+fmt.Sprint(i)+`'><body>`+body+`</body></message>`)
			bob.Wait(t, matrixWait, body, func(e *event.Event) bool { return dendritetest.Body(e) == body })
			if _, err := bob.SendText(ctxFor(t), room, "pong "+body); err != nil {
				t.Fatal(err)
			}
			waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "pong "+body })
			total = append(total, time.Since(start))
		}
		slices.Sort(total)
		t.Logf("XMPP→Matrix→XMPP round trip: median %v, max %v (5 round trips; includes bob's client polling every 50 ms)",
			total[len(total)/2].Round(time.Millisecond), total[len(total)-1].Round(time.Millisecond))
	})

	t.Run("corrections both ways", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='m1c'><body>hello Bob</body><replace id='m1' xmlns='urn:xmpp:message-correct:0'/></message>`)
		e := bob.Wait(t, matrixWait, "the correction", func(e *event.Event) bool { return dendritetest.Body(e) == "hello Bob" })
		if e.Content.AsMessage().RelatesTo.GetReplaceID() != m1.ID {
			t.Errorf("the correction does not replace %s", m1.ID)
		}
		edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "hi Alice"}
		edit.SetEdit(b1.EventID)
		if _, err := bob.SendMessageEvent(ctxFor(t), room, event.EventMessage, edit); err != nil {
			t.Fatal(err)
		}
		got := waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "hi Alice" })
		if got.Replace == nil || got.Replace.ID != in1.ID {
			t.Errorf("bob's edit reached alice with replace %+v, want the id of %q, %s", got.Replace, in1.Body, in1.ID)
		}
	})

	t.Run("reactions both ways", func(t *testing.T) {
		react, err := bob.SendReaction(ctxFor(t), room, m1.ID, "👍")
		if err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, bobJID, func(m conv) bool {
			return m.Reactions != nil && m.Reactions.ID == "m1" && sameSet(m.Reactions.Reactions, []string{"👍"})
		})
		if _, err := bob.RedactEvent(ctxFor(t), room, react.EventID); err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, bobJID, func(m conv) bool {
			return m.Reactions != nil && m.Reactions.ID == "m1" && len(m.Reactions.Reactions) == 0
		})
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='r1'><reactions id='`+in1.ID+`' xmlns='urn:xmpp:reactions:0'><reaction>🎉</reaction></reactions><store xmlns='urn:xmpp:hints'/></message>`)
		r := bob.Wait(t, matrixWait, "alice's reaction", func(e *event.Event) bool {
			return e.Type == event.EventReaction && e.Content.AsReaction().RelatesTo.EventID == b1.EventID && e.Content.AsReaction().RelatesTo.Key == "🎉"
		})
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='r2'><reactions id='`+in1.ID+`' xmlns='urn:xmpp:reactions:0'/><store xmlns='urn:xmpp:hints'/></message>`)
		bob.Wait(t, matrixWait, "the reaction's removal", func(e *event.Event) bool { return e.Type == event.EventRedaction && e.Redacts == r.ID })
	})

	t.Run("replies both ways", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='m2'><body>&gt; hi Alice
answering you</body><reply to='`+bobJID+`' id='`+in1.ID+`' xmlns='urn:xmpp:reply:0'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='11'/></fallback></message>`)
		e := bob.Wait(t, matrixWait, "alice's reply", func(e *event.Event) bool { return dendritetest.Body(e) == "answering you" })
		if e.Content.AsMessage().RelatesTo.GetReplyTo() != b1.EventID {
			t.Errorf("alice's reply is not in reply to %s", b1.EventID)
		}
		reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "replying to m1"}
		reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(m1.ID)
		if _, err := bob.SendMessageEvent(ctxFor(t), room, event.EventMessage, reply); err != nil {
			t.Fatal(err)
		}
		got := waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "replying to m1" })
		if got.Reply == nil || got.Reply.ID != "m1" {
			t.Errorf("bob's reply reached alice with reply %+v, want id m1", got.Reply)
		}
	})

	t.Run("retractions both ways", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='x1'><retract id='m1' xmlns='urn:xmpp:message-retract:1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a previous message, but it's unsupported by your client.</body><store xmlns='urn:xmpp:hints'/></message>`)
		bob.Wait(t, matrixWait, "the redaction of m1", func(e *event.Event) bool { return e.Type == event.EventRedaction && e.Redacts == m1.ID })
		if _, err := bob.RedactEvent(ctxFor(t), room, b1.EventID); err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, bobJID, func(m conv) bool { return m.Retract != nil && m.Retract.ID == in1.ID })
	})

	t.Run("typing and read markers both ways", func(t *testing.T) {
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><no-store xmlns='urn:xmpp:hints'/></message>`)
		bob.Wait(t, matrixWait, "alice typing", func(e *event.Event) bool {
			return e.Type == event.EphemeralEventTyping && slices.Contains(e.Content.AsTyping().UserIDs, id.UserID("@alice:localhost"))
		})
		if _, err := bob.UserTyping(ctxFor(t), room, true, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, bobJID, func(m conv) bool { return m.Composing != nil })
		b2, err := bob.SendText(ctxFor(t), room, "read this")
		if err != nil {
			t.Fatal(err)
		}
		in2 := waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "read this" })
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='mk1'><displayed xmlns='urn:xmpp:chat-markers:0' id='`+in2.ID+`'/></message>`)
		bob.Wait(t, matrixWait, "alice's read receipt", func(e *event.Event) bool {
			if e.Type != event.EphemeralEventReceipt {
				return false
			}
			_, ok := (*e.Content.AsReceipt())[b2.EventID][event.ReceiptTypeRead]["@alice:localhost"]
			return ok
		})
	})

	t.Run("a room: occupants, topic, groupchat both ways", func(t *testing.T) {
		if _, err := bob.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "lounge", Topic: "welcome"}); err != nil {
			t.Fatal(err)
		}
		roomJID := "#lounge%localhost@" + matrixDomain
		alice.SendRaw(t, `<presence to='`+roomJID+`/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "presence" && s.From == roomJID+"/bob" && s.Type == ""
		})
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "presence" && s.From == roomJID+"/alice" && strings.Contains(s.Raw, "110")
		})
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.From == roomJID && strings.Contains(s.Raw, "<subject>welcome</subject>")
		})
		lounge, err := bob.ResolveAlias(ctxFor(t), "#lounge:localhost")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.SendText(ctxFor(t), lounge.RoomID, "hi room"); err != nil {
			t.Fatal(err)
		}
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.Type == "groupchat" && s.From == roomJID+"/bob" && s.Body == "hi room"
		})
		alice.SendRaw(t, `<message to='`+roomJID+`' type='groupchat' id='g1'><body>hello room</body></message>`)
		refl := alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && s.Type == "groupchat" && s.From == roomJID+"/alice" && s.Body == "hello room"
		})
		if refl.ID != "g1" {
			t.Errorf("the reflection has id %q, want g1: %s", refl.ID, refl.Raw)
		}
		bob.Wait(t, matrixWait, "alice's groupchat", func(e *event.Event) bool { return dendritetest.Body(e) == "hello room" && e.RoomID == lounge.RoomID })
		if err := bob.SetDisplayName(ctxFor(t), "Bobby"); err != nil {
			t.Fatal(err)
		}
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "presence" && s.From == roomJID+"/bob" && s.Type == "unavailable" && strings.Contains(s.Raw, "303") && strings.Contains(s.Raw, "Bobby")
		})
		alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "presence" && s.From == roomJID+"/Bobby" && s.Type == ""
		})
	})

	t.Run("the homeserver restarted mid-conversation", func(t *testing.T) {
		if _, err := bob.SendText(ctxFor(t), room, "before the homeserver restart"); err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "before the homeserver restart" })
		hs.Stop(t)
		hs.Start(t)
		want := []string{"hs back 1", "hs back 2"}
		for _, body := range want {
			if _, err := bob.SendText(ctxFor(t), room, body); err != nil {
				t.Fatal(err)
			}
		}
		waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == want[1] })
		// alice's message goes out again (the runner retries while the
		// adapter's connections recover).
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='hs1'><body>after the homeserver restart</body></message>`)
		bob.Wait(t, matrixWait, "alice's message after the homeserver restart", func(e *event.Event) bool { return dendritetest.Body(e) == "after the homeserver restart" })
		if _, err := bob.SendText(ctxFor(t), room, "hs last"); err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "hs last" })
		var got []string
		for _, raw := range alice.Stanzas() {
			s, err := xmpptest.ParseStanza(raw)
			if err == nil && s.Kind == "message" && strings.HasPrefix(s.Body, "hs back") {
				got = append(got, s.Body)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("alice received %q, want %q: each once, in order", got, want)
		}
	})

	t.Run("an image both ways", func(t *testing.T) {
		png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
		upload := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "image/png")
			_, _ = rw.Write(png)
		}))
		defer upload.Close()
		url := upload.URL + "/upload/cat.png"
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='img1'><body>`+url+`</body><x xmlns='jabber:x:oob'><url>`+url+`</url></x></message>`)
		img := bob.Wait(t, matrixWait, "alice's image", func(e *event.Event) bool {
			m, ok := e.Content.Parsed.(*event.MessageEventContent)
			return ok && m.MsgType == event.MsgImage && m.Body == "cat.png"
		})
		uri, err := img.Content.AsMessage().URL.Parse()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := bob.DownloadBytes(ctxFor(t), uri); err != nil || !bytes.Equal(got, png) {
			t.Errorf("the image on Matrix: %d bytes, %v", len(got), err)
		}
		up, err := bob.UploadMedia(ctxFor(t), mautrix.ReqUploadMedia{ContentBytes: png, ContentType: "image/png", FileName: "dog.png"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.SendMessageEvent(ctxFor(t), room, event.EventMessage, &event.MessageEventContent{
			MsgType: event.MsgImage, Body: "dog.png", URL: up.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "image/png", Size: len(png)},
		}); err != nil {
			t.Fatal(err)
		}
		s := alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && bare(s.From) == bobJID && strings.Contains(s.Raw, "jabber:x:oob")
		})
		var oob struct {
			URL string `xml:"jabber:x:oob x>url"`
		}
		if err := xml.Unmarshal([]byte(s.Raw), &oob); err != nil || !strings.HasPrefix(oob.URL, "http://"+httpAddr+"/matrix/matrix/media/") {
			t.Fatalf("bob's image reached alice as %s, want a media link of the gateway's", s.Raw)
		}
		c := &http.Client{Timeout: matrixWait, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(oob.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, png) {
			t.Errorf("GET %s: %s, %d bytes; want the image", oob.URL, resp.Status, len(got))
		}
	})

	t.Run("an invitation to a room", func(t *testing.T) {
		if _, err := bob.CreateRoom(ctxFor(t), &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "party", Name: "Party",
			Invite: []id.UserID{"@alice:localhost"}}); err != nil {
			t.Fatal(err)
		}
		s := alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool {
			return s.Kind == "message" && bare(s.From) == bobJID && strings.Contains(s.Raw, "jabber:x:conference")
		})
		if !strings.Contains(s.Raw, "#party%localhost@"+matrixDomain) {
			t.Errorf("the invitation does not name #party%%localhost@%s: %s", matrixDomain, s.Raw)
		}
	})

	t.Run("kill -9 of the gateway loses nothing and duplicates nothing", func(t *testing.T) {
		want := []string{"while down 1", "while down 2", "while down 3"}
		env.killAndRestart(top, func() {
			for _, body := range want {
				if _, err := bob.SendText(ctxFor(t), room, body); err != nil {
					t.Fatal(err)
				}
			}
		})
		waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == want[len(want)-1] })
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='m9'><body>after the restart</body></message>`)
		bob.Wait(t, matrixWait, "alice's message after the restart", func(e *event.Event) bool { return dendritetest.Body(e) == "after the restart" })
		// Anything delivered twice would have arrived by now, before
		// the answer to alice's message made the round trip.
		if _, err := bob.SendText(ctxFor(t), room, "last"); err != nil {
			t.Fatal(err)
		}
		waitConv(t, alice, bobJID, func(m conv) bool { return m.Body == "last" })
		var got []string
		for _, raw := range alice.Stanzas() {
			s, err := xmpptest.ParseStanza(raw)
			if err == nil && s.Kind == "message" && strings.HasPrefix(s.Body, "while down") {
				got = append(got, s.Body)
				if !strings.Contains(s.Raw, "urn:xmpp:delay") {
					t.Errorf("%q arrived while the gateway was down but has no XEP-0203 delay: %s", s.Body, s.Raw)
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("alice received %q, want %q: each once, in order", got, want)
		}
		var sent int
		for _, e := range bob.Seen() {
			if dendritetest.Body(e) == "after the restart" {
				sent++
			}
		}
		if sent != 1 {
			t.Errorf("bob received alice's message %d times", sent)
		}
	})

	t.Run("unregistering logs the device out", func(t *testing.T) {
		env.unregister(t)
		alice.SendRaw(t, `<message to='`+bobJID+`' type='chat' id='m10'><body>after logout</body></message>`)
		s := alice.WaitStanza(t, matrixWait, func(s xmpptest.Stanza) bool { return s.Kind == "message" && s.ID == "m10" && s.Type == "error" })
		if s.ErrorCondition != "registration-required" {
			t.Errorf("a message after unregistering: %s, want registration-required", s.Raw)
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), matrixWait)
	t.Cleanup(cancel)
	return ctx
}
