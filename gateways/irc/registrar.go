package irc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/gateways"
)

// Registrar is the nick registry: which nick each user has on IRC. Users
// choose their nick when they register (gateways.AddressChooser); two
// users cannot hold nicks that IRC considers the same.
//
// Two keys per registration in the Registrations bucket, in the gateway's
// namespace:
//
//	<gw>.nick.<base64url(folded nick)> → user bare JID (the lock)
//	<gw>.user.<base64url(user)>        → nick, as the user wrote it
//
// The nick key is created with KV Create, so two registrations racing for
// a nick cannot both win. The adapter watches the user keys: a new key
// connects the user, a changed one changes their nick, a deleted one
// disconnects them — whichever process of the gateway made the change.
type Registrar struct {
	kv jetstream.KeyValue
	gw string
	a  *Adapter
}

func (r *Registrar) get(ctx context.Context, key string) (string, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("registrations: %w", err)
	}
	return string(e.Value()), e.Revision(), nil
}

// AddressField describes the registration form's nick field.
func (r *Registrar) AddressField() (label, instructions string) {
	ctx, cancel := context.WithTimeout(context.Background(), probeWait)
	defer cancel()
	return "Nick", fmt.Sprintf("Choose your nick on IRC: up to %d letters, digits and - [ ] \\ ` _ ^ { | }, "+
		"not starting with a digit or -. Others on IRC see you by this nick.", r.serverNickLimit(ctx))
}

// Lookup returns user's nick, "" when they have none.
func (r *Registrar) Lookup(ctx context.Context, user string) (string, error) {
	n, _, err := r.get(ctx, r.userKey(user))
	return n, err
}

// Register returns the nick user already has: on IRC a nick is chosen,
// not assigned, so a user without one is asked to choose (RegisterAs).
func (r *Registrar) Register(ctx context.Context, user string) (string, error) {
	n, err := r.Lookup(ctx, user)
	if err != nil || n != "" {
		return n, err
	}
	return "", gateways.Reject(gateways.NotAcceptable, "choose a nick: register with the nick you want on IRC")
}

// RegisterAs gives user the nick they asked for, replacing theirs; a
// connected user changes nick at once.
func (r *Registrar) RegisterAs(ctx context.Context, user, nick string) (string, error) {
	if why := checkNick(nick, r.serverNickLimit(ctx)); why != "" {
		return "", gateways.Reject(gateways.NotAcceptable, "%s", why)
	}
	if err := r.assign(ctx, user, nick); err != nil {
		return "", err
	}
	return nick, nil
}

var _ gateways.AddressNamer = (*Registrar)(nil)

// AddressName: a user's address is their nick, which an administrator
// can give them (Assign) and take away (Unassign).
func (r *Registrar) AddressName() (string, bool) { return "nick", true }

// Assign gives nick to user, as an administrator would.
func (r *Registrar) Assign(ctx context.Context, user, nick string) error {
	if why := checkNick(nick, r.serverNickLimit(ctx)); why != "" {
		return gateways.Reject(gateways.JIDMalformed, "%s", why)
	}
	return r.assign(ctx, user, nick)
}

func (r *Registrar) assign(ctx context.Context, user, nick string) error {
	user = strings.ToLower(user)
	nk := r.nickKey(nick)
	owner, rev, err := r.get(ctx, nk)
	if err != nil {
		return err
	}
	switch {
	case owner == "":
		if _, err := r.kv.Create(ctx, nk, []byte(user)); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return gateways.Reject(gateways.Conflict, "the nick %s was just taken by another user of this gateway", nick)
			}
			return fmt.Errorf("registrations: %w", err)
		}
	case owner != user:
		// Taken, unless the owner's registration no longer names it (a
		// crash between the two deletes of an unregistration).
		theirs, _, err := r.get(ctx, r.userKey(owner))
		if err != nil {
			return err
		}
		if theirs != "" && fold(theirs) == fold(nick) {
			return gateways.Reject(gateways.Conflict, "the nick %s is taken by another user of this gateway; choose another", nick)
		}
		if _, err := r.kv.Update(ctx, nk, []byte(user), rev); err != nil {
			return gateways.Reject(gateways.Conflict, "the nick %s was just taken by another user of this gateway", nick)
		}
	}
	old, _, err := r.get(ctx, r.userKey(user))
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, r.userKey(user), []byte(nick)); err != nil {
		return fmt.Errorf("registrations: %w", err)
	}
	if old != "" && fold(old) != fold(nick) {
		r.release(ctx, user, old)
	}
	if run, err := r.a.current(); err == nil {
		run.registered(user, nick) // at once, before the watcher sees it
	}
	return nil
}

// release deletes a nick key if it is still user's.
func (r *Registrar) release(ctx context.Context, user, nick string) {
	nk := r.nickKey(nick)
	if owner, rev, err := r.get(ctx, nk); err == nil && owner == user {
		_ = r.kv.Delete(ctx, nk, jetstream.LastRevision(rev))
	}
}

// Unregister releases user's nick and disconnects them from IRC.
func (r *Registrar) Unregister(ctx context.Context, user string) (string, error) {
	user = strings.ToLower(user)
	nick, _, err := r.get(ctx, r.userKey(user))
	if err != nil || nick == "" {
		return "", err
	}
	if err := r.kv.Delete(ctx, r.userKey(user)); err != nil {
		return "", fmt.Errorf("registrations: %w", err)
	}
	r.release(ctx, user, nick)
	if run, err := r.a.current(); err == nil {
		run.unregistered(user)
	}
	return nick, nil
}

// Unassign releases nick and returns who had it, disconnecting them.
func (r *Registrar) Unassign(ctx context.Context, nick string) (string, error) {
	owner, _, err := r.get(ctx, r.nickKey(nick))
	if err != nil {
		return "", err
	}
	if owner == "" {
		return "", gateways.Reject(gateways.ItemNotFound, "no user of this gateway has the nick %s", nick)
	}
	if theirs, _, err := r.get(ctx, r.userKey(owner)); err != nil {
		return "", err
	} else if fold(theirs) == fold(nick) {
		if _, err := r.Unregister(ctx, owner); err != nil {
			return "", err
		}
		return owner, nil
	}
	r.release(ctx, owner, nick) // a stale lock
	return owner, nil
}

// List returns user → nick for every registration.
func (r *Registrar) List(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	lister, err := r.kv.ListKeysFiltered(ctx, r.gw+".user.*")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return out, nil
		}
		return nil, fmt.Errorf("registrations: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		user, ok := r.userOfKey(k)
		if !ok {
			continue
		}
		nick, _, err := r.get(ctx, k)
		if err != nil {
			return nil, err
		}
		if nick != "" {
			out[user] = nick
		}
	}
	return out, nil
}
