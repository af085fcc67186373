//go:build goolm

package dendritetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// EnableCrypto gives the user's device end-to-end encryption, as Element
// has (mautrix's Olm machine, its state in memory): its keys are uploaded
// now; from then on Sync decrypts what it can (an encrypted event that
// cannot be decrypted stays m.room.encrypted), and SendText and
// SendMessageEvent encrypt in encrypted rooms, sharing the room key with
// every device of the room's members. Reactions are not encrypted by
// mautrix's SendReaction: use SendEncrypted.
func (u *User) EnableCrypto(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	state := mautrix.NewMemoryStateStore()
	u.StateStore = state
	mach := crypto.NewOlmMachine(u.Client, nil, crypto.NewMemoryStore(nil), state.(crypto.StateStore))
	if err := mach.Load(ctx); err != nil {
		t.Fatalf("dendritetest: %s: loading an Olm account: %v", u.ID, err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("dendritetest: %s: uploading the device's keys: %v", u.ID, err)
	}
	h := &userCrypto{u: u, mach: mach, state: state}
	u.Crypto = h
	u.mu.Lock()
	u.crypt = h
	u.mu.Unlock()
}

// SendEncrypted encrypts content for the room and sends it (the room must
// be encrypted).
func (u *User) SendEncrypted(ctx context.Context, room id.RoomID, typ event.Type, content any) (*mautrix.RespSendEvent, error) {
	if u.Crypto == nil {
		return nil, fmt.Errorf("dendritetest: %s has no encryption (EnableCrypto)", u.ID)
	}
	enc, err := u.Crypto.Encrypt(ctx, room, typ, content)
	if err != nil {
		return nil, err
	}
	return u.SendMessageEvent(ctx, room, event.EventEncrypted, enc, mautrix.ReqSendEvent{DontEncrypt: true})
}

// WaitDeviceKeys waits until the homeserver has keys for one of user's
// devices (a device with encryption uploads them when it starts).
func (u *User) WaitDeviceKeys(t testing.TB, user id.UserID, timeout time.Duration) {
	t.Helper()
	ok := proctest.Poll(timeout, 50*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := u.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: map[id.UserID]mautrix.DeviceIDList{user: nil}})
		if err != nil {
			return false
		}
		for _, d := range resp.DeviceKeys[user] {
			if len(d.Keys) > 0 {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no device keys of %s on the homeserver within %v", user, timeout)
	}
}

// EncryptedState is the m.room.encryption initial state Element puts in
// the rooms it creates.
func EncryptedState() []*event.Event {
	return []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
		Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}
}

// userCrypto is a test user's Olm machine, as Sync and mautrix's client
// (mautrix.CryptoHelper) use it.
type userCrypto struct {
	u     *User
	mach  *crypto.OlmMachine
	state mautrix.StateStore
}

var _ mautrix.CryptoHelper = (*userCrypto)(nil)

func (h *userCrypto) sync(ctx context.Context, resp *mautrix.RespSync, since string) {
	h.mach.ProcessSyncResponse(ctx, resp, since)
}

func (h *userCrypto) event(ctx context.Context, evt *event.Event) *event.Event {
	if evt.StateKey != nil {
		mautrix.UpdateStateStore(ctx, h.state, evt)
		if evt.Type == event.StateMember {
			h.mach.HandleMemberEvent(ctx, evt)
		}
		return evt
	}
	if evt.Type != event.EventEncrypted {
		return evt
	}
	d, err := h.mach.DecryptMegolmEvent(ctx, evt)
	if err != nil {
		return evt
	}
	return d
}

func (h *userCrypto) Init(context.Context) error { return nil }

func (h *userCrypto) Decrypt(ctx context.Context, evt *event.Event) (*event.Event, error) {
	return h.mach.DecryptMegolmEvent(ctx, evt)
}

func (h *userCrypto) WaitForSession(ctx context.Context, room id.RoomID, key id.SenderKey, session id.SessionID, d time.Duration) bool {
	return h.mach.WaitForSession(ctx, room, key, session, d)
}

func (h *userCrypto) RequestSession(context.Context, id.RoomID, id.SenderKey, id.SessionID, id.UserID, id.DeviceID) {
}

// Encrypt encrypts for the room's joined and invited members, as the
// homeserver lists them now.
func (h *userCrypto) Encrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (*event.EncryptedEventContent, error) {
	enc, err := h.mach.EncryptMegolmEvent(ctx, room, typ, content)
	if err == nil || !crypto.IsShareError(err) {
		return enc, err
	}
	members, err := h.u.Members(ctx, room)
	if err != nil {
		return nil, err
	}
	var users []id.UserID
	for _, m := range members.Chunk {
		if ms := m.Content.AsMember().Membership; ms == event.MembershipJoin || ms == event.MembershipInvite {
			if !slices.Contains(users, id.UserID(m.GetStateKey())) {
				users = append(users, id.UserID(m.GetStateKey()))
			}
		}
	}
	if err := h.mach.ShareGroupSession(ctx, room, users); err != nil {
		return nil, err
	}
	return h.mach.EncryptMegolmEvent(ctx, room, typ, content)
}
