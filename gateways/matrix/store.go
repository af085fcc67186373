package matrix

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"maunium.net/go/mautrix/id"
)

// What the adapter keeps, in the gateway's namespace of the shared
// buckets (keys hold base64url of JIDs and Matrix ids, which may contain
// characters NATS keys cannot):
//
//	registrations  <gw>.account.<user>          the login: homeserver, Matrix ID,
//	                                            device id, access token (never logged)
//	registrations  <gw>.since.<user>            the /sync token of the last batch
//	                                            handed to the gateway
//	registrations  <gw>.room.<user>.<room id>   a room the user joined from XMPP: its
//	                                            address, the full JID and nick that joined
//	messages       <gw>.react.<user>.<event>.<key>  the event id of a reaction the
//	                                            user sent (to redact it on removal)
//	messages       <gw>.inreact.<user>.<event>  a contact's reaction event: what it
//	                                            reacted to and with, for its redaction
//
// The messages bucket expires entries (a week): a reaction older than that
// can no longer be taken back from XMPP.

// account is a user's Matrix login.
type account struct {
	Homeserver  string      `json:"homeserver"`
	UserID      id.UserID   `json:"user_id"`
	DeviceID    id.DeviceID `json:"device_id"`
	AccessToken string      `json:"access_token"`
}

// String keeps the token out of anything that prints an account.
func (a account) String() string {
	return fmt.Sprintf("%s on %s (device %s)", a.UserID, a.Homeserver, a.DeviceID)
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func dec(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}

func (a *Adapter) accountKey(user string) string { return a.name + ".account." + enc(user) }
func (a *Adapter) sinceKey(user string) string   { return a.name + ".since." + enc(user) }
func (a *Adapter) accountPrefix() string         { return a.name + ".account." }

func (a *Adapter) roomKey(user string, room id.RoomID) string {
	return a.roomPrefix(user) + enc(string(room))
}
func (a *Adapter) roomPrefix(user string) string { return a.name + ".room." + enc(user) + "." }

func (a *Adapter) reactKey(user string, ev id.EventID, key string) string {
	return a.name + ".react." + enc(user) + "." + enc(string(ev)) + "." + enc(key)
}

func (a *Adapter) inReactKey(user string, ev id.EventID) string {
	return a.name + ".inreact." + enc(user) + "." + enc(string(ev))
}

// userOfAccountKey returns the user of an account key.
func (a *Adapter) userOfAccountKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, a.accountPrefix())
	if !ok {
		return "", false
	}
	u, err := dec(rest)
	return u, err == nil && u != ""
}

// loadAccount returns user's login; ok is false when they have none.
func (a *Adapter) loadAccount(ctx context.Context, user string) (account, bool, error) {
	e, err := a.kv.Get(ctx, a.accountKey(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return account{}, false, nil
	}
	if err != nil {
		return account{}, false, fmt.Errorf("matrix: registrations: %w", err)
	}
	var acc account
	if err := json.Unmarshal(e.Value(), &acc); err != nil {
		return account{}, false, fmt.Errorf("matrix: stored login of %s: %w", user, err)
	}
	return acc, true, nil
}

func (a *Adapter) storeAccount(ctx context.Context, user string, acc account) error {
	b, err := json.Marshal(acc)
	if err != nil {
		return err
	}
	if _, err := a.kv.Put(ctx, a.accountKey(user), b); err != nil {
		return fmt.Errorf("matrix: registrations: %w", err)
	}
	return nil
}

// getString reads a key of kv, "" when missing.
func getString(ctx context.Context, kv jetstream.KeyValue, key string) (string, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

// inReaction is a contact's reaction, kept until it is redacted.
type inReaction struct {
	Target id.EventID `json:"target"`
	Key    string     `json:"key"`
	Room   id.RoomID  `json:"room"`
}

// roomRecord is a room the user joined from XMPP, kept so that a restart
// goes on delivering it.
type roomRecord struct {
	Addr string `json:"addr"`
	JID  string `json:"jid"`
	Nick string `json:"nick"`
}
