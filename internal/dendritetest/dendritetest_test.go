package dendritetest_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/internal/dendritetest"
)

// TestServer starts Dendrite, registers two users who talk in a direct
// chat, and restarts the server with its data.
func TestServer(t *testing.T) {
	srv := dendritetest.Start(t)
	alice := srv.User(t, "alice")
	bob := srv.User(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bob.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "hello bob"); err != nil {
		t.Fatal(err)
	}
	bob.Wait(t, 20*time.Second, "alice's message", func(e *event.Event) bool { return dendritetest.Body(e) == "hello bob" })

	srv.Stop(t)
	srv.Start(t)
	if _, err := alice.SendText(ctx, room.RoomID, "after the restart"); err != nil {
		t.Fatal(err)
	}
	bob.Wait(t, 20*time.Second, "the message after the restart", func(e *event.Event) bool { return dendritetest.Body(e) == "after the restart" })
}
