package dendritetest

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// User is a Matrix user played by a test with an ordinary mautrix client.
// It syncs only when asked (Sync, Wait), over connections that are not
// kept alive, so it leaves no goroutine behind between calls.
type User struct {
	*mautrix.Client
	ID id.UserID

	mu     sync.Mutex
	since  string
	events []*event.Event // timeline and ephemeral events seen, in order
	crypt  cryptoHook     // set by EnableCrypto (build tag goolm)
}

// cryptoHook is a device's end-to-end encryption as Sync uses it.
type cryptoHook interface {
	// sync takes a batch's to-device events and device lists, before its rooms.
	sync(ctx context.Context, resp *mautrix.RespSync, since string)
	// event takes a room event: state is noted, an encrypted event is
	// returned decrypted (unchanged when that fails).
	event(ctx context.Context, evt *event.Event) *event.Event
}

// User registers localpart (password "password") and logs it in.
func (s *Server) User(t testing.TB, localpart string) *User {
	t.Helper()
	uid := s.Register(t, localpart, "password")
	cli, err := mautrix.NewClient(s.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	cli.Client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:         "password",
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("dendritetest: log in %s: %v", localpart, err)
	}
	return &User{Client: cli, ID: uid}
}

// Sync fetches what happened since the last Sync (without waiting), joins
// the rooms the user is invited to, and returns the new timeline and
// ephemeral events, their content parsed and RoomID set. Errors are
// returned, not fatal: the server may be down on purpose.
func (u *User) Sync(ctx context.Context) ([]*event.Event, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	resp, err := u.SyncRequest(ctx, 0, u.since, "", false, event.PresenceOffline)
	if err != nil {
		return nil, err
	}
	if u.crypt != nil {
		u.crypt.sync(ctx, resp, u.since)
	}
	for room := range resp.Rooms.Invite {
		if _, err := u.JoinRoomByID(ctx, room); err != nil {
			return nil, err
		}
	}
	var out []*event.Event
	for room, jr := range resp.Rooms.Join {
		for _, evt := range jr.State.Events {
			evt.RoomID = room
			_ = evt.Content.ParseRaw(evt.Type)
			if u.crypt != nil {
				u.crypt.event(ctx, evt)
			}
		}
		for _, list := range [][]*event.Event{jr.Timeline.Events, jr.Ephemeral.Events} {
			for _, evt := range list {
				evt.RoomID = room
				_ = evt.Content.ParseRaw(evt.Type)
				if u.crypt != nil {
					evt = u.crypt.event(ctx, evt)
				}
				out = append(out, evt)
			}
		}
	}
	u.since = resp.NextBatch
	u.events = append(u.events, out...)
	return out, nil
}

// Seen returns every event Sync returned so far.
func (u *User) Seen() []*event.Event {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*event.Event(nil), u.events...)
}

// Wait syncs until an event seen (now or before) matches, and returns it;
// it fails the test after timeout.
func (u *User) Wait(t testing.TB, timeout time.Duration, what string, match func(*event.Event) bool) *event.Event {
	t.Helper()
	var found *event.Event
	var lastErr error
	proctest.Poll(timeout, 50*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := u.Sync(ctx); err != nil {
			lastErr = err
		}
		for _, e := range u.Seen() {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	if found == nil {
		t.Fatalf("%s did not see %s within %v (last sync error: %v)", u.ID, what, timeout, lastErr)
	}
	return found
}

// Body is a message event's body ("" for other events); for an edit, the
// new body.
func Body(e *event.Event) string {
	m, ok := e.Content.Parsed.(*event.MessageEventContent)
	if !ok {
		return ""
	}
	if m.NewContent != nil {
		return m.NewContent.Body
	}
	return m.Body
}
