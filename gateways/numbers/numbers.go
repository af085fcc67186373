// Package numbers assigns network addresses (phone numbers) to XMPP users and
// keeps the assignments in a JetStream KV bucket, so that every process of a
// gateway sees the same state and a restart keeps it.
//
// Two keys per assignment, both in the gateway's namespace:
//
//	<gw>.n.<number without +>  → user bare JID   (inbound routing; the lock)
//	<gw>.u.<base64url(user)>   → number           (outbound From)
//
// The number key is created with KV Create, which fails when it exists: two
// processes handing out the same pool number cannot both win. A crash between
// the two writes leaves a number key whose user key is missing; Register finds
// it (the number key names the user) and completes it.
package numbers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/gateways"
)

// E164 matches a number in E.164 form.
var E164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Registrar is the assignment store of one gateway.
type Registrar struct {
	kv      jetstream.KeyValue
	gw      string
	static  map[string]string // number → user, from configuration; read-only
	byUser  map[string]string // user → number, the same reversed
	pool    []string
	poolSet map[string]bool
}

// New returns a registrar for gateway gw. static (number → bare JID) are
// operator assignments that cannot be changed at run time; pool are the
// numbers Register may hand out.
func New(kv jetstream.KeyValue, gw string, static map[string]string, pool []string) *Registrar {
	r := &Registrar{kv: kv, gw: gw, static: map[string]string{}, byUser: map[string]string{}, poolSet: map[string]bool{}}
	for n, u := range static {
		u = strings.ToLower(u)
		r.static[n] = u
		r.byUser[u] = n
	}
	for _, n := range pool {
		if _, taken := r.static[n]; !taken && !r.poolSet[n] {
			r.pool = append(r.pool, n)
			r.poolSet[n] = true
		}
	}
	return r
}

func (r *Registrar) numberKey(number string) string {
	return r.gw + ".n." + strings.TrimPrefix(number, "+")
}

func (r *Registrar) userKey(user string) string {
	return r.gw + ".u." + base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(user)))
}

func get(ctx context.Context, kv jetstream.KeyValue, key string) (string, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("registrations: %w", err)
	}
	return string(e.Value()), nil
}

// Lookup returns user's number, "" when none.
func (r *Registrar) Lookup(ctx context.Context, user string) (string, error) {
	user = strings.ToLower(user)
	if n, ok := r.byUser[user]; ok {
		return n, nil
	}
	return get(ctx, r.kv, r.userKey(user))
}

// UserFor returns the user a number belongs to, "" when nobody.
func (r *Registrar) UserFor(ctx context.Context, number string) (string, error) {
	if u, ok := r.static[number]; ok {
		return u, nil
	}
	return get(ctx, r.kv, r.numberKey(number))
}

// Register gives user a number from the pool, or the one they have.
func (r *Registrar) Register(ctx context.Context, user string) (string, error) {
	user = strings.ToLower(user)
	if n, err := r.Lookup(ctx, user); err != nil || n != "" {
		return n, err
	}
	for _, n := range r.pool {
		_, err := r.kv.Create(ctx, r.numberKey(n), []byte(user))
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Taken, unless a crash left our own half-written claim.
			if owner, gerr := get(ctx, r.kv, r.numberKey(n)); gerr != nil || owner != user {
				continue
			}
		} else if err != nil {
			return "", fmt.Errorf("registrations: %w", err)
		}
		if _, err := r.kv.Put(ctx, r.userKey(user), []byte(n)); err != nil {
			return "", fmt.Errorf("registrations: %w", err)
		}
		return n, nil
	}
	if len(r.pool) == 0 {
		return "", gateways.Reject(gateways.NotAllowed, "this gateway hands out no numbers; ask an administrator to assign you one")
	}
	return "", gateways.Reject(gateways.ResourceConstraint, "every number in the pool is taken; ask an administrator")
}

// Unregister releases user's number.
func (r *Registrar) Unregister(ctx context.Context, user string) (string, error) {
	user = strings.ToLower(user)
	if n, ok := r.byUser[user]; ok {
		return "", gateways.Reject(gateways.NotAllowed, "your number %s is assigned in the gateway's configuration; ask an administrator", n)
	}
	n, err := get(ctx, r.kv, r.userKey(user))
	if err != nil || n == "" {
		return "", err
	}
	return n, r.release(ctx, user, n)
}

func (r *Registrar) release(ctx context.Context, user, number string) error {
	if err := r.kv.Delete(ctx, r.userKey(user)); err != nil {
		return fmt.Errorf("registrations: %w", err)
	}
	if err := r.kv.Delete(ctx, r.numberKey(number)); err != nil {
		return fmt.Errorf("registrations: %w", err)
	}
	return nil
}

// Assign gives number to user, replacing user's previous number.
func (r *Registrar) Assign(ctx context.Context, user, number string) error {
	user = strings.ToLower(user)
	if !E164.MatchString(number) {
		return gateways.Reject(gateways.JIDMalformed, "%q is not a number in E.164 form (e.g. +15551234567)", number)
	}
	if u, ok := r.static[number]; ok {
		return gateways.Reject(gateways.NotAllowed, "%s is assigned to %s in the gateway's configuration", number, u)
	}
	if n, ok := r.byUser[user]; ok {
		return gateways.Reject(gateways.NotAllowed, "%s has %s from the gateway's configuration", user, n)
	}
	owner, err := get(ctx, r.kv, r.numberKey(number))
	if err != nil {
		return err
	}
	if owner == user {
		_, err := r.kv.Put(ctx, r.userKey(user), []byte(number))
		return err
	}
	if owner != "" {
		return gateways.Reject(gateways.Conflict, "%s is already assigned to %s; unassign it first", number, owner)
	}
	if _, err := r.kv.Create(ctx, r.numberKey(number), []byte(user)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return gateways.Reject(gateways.Conflict, "%s was just assigned to someone else", number)
		}
		return fmt.Errorf("registrations: %w", err)
	}
	old, err := get(ctx, r.kv, r.userKey(user))
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, r.userKey(user), []byte(number)); err != nil {
		return fmt.Errorf("registrations: %w", err)
	}
	if old != "" && old != number {
		if err := r.kv.Delete(ctx, r.numberKey(old)); err != nil {
			return fmt.Errorf("registrations: %w", err)
		}
	}
	return nil
}

// Unassign releases number and returns who had it.
func (r *Registrar) Unassign(ctx context.Context, number string) (string, error) {
	if u, ok := r.static[number]; ok {
		return "", gateways.Reject(gateways.NotAllowed, "%s is assigned to %s in the gateway's configuration; change it there", number, u)
	}
	owner, err := get(ctx, r.kv, r.numberKey(number))
	if err != nil {
		return "", err
	}
	if owner == "" {
		return "", gateways.Reject(gateways.ItemNotFound, "%s is not assigned to anyone", number)
	}
	return owner, r.release(ctx, owner, number)
}

// List returns user → number for static and registered assignments.
func (r *Registrar) List(ctx context.Context) (map[string]string, error) {
	out := make(map[string]string, len(r.byUser))
	for u, n := range r.byUser {
		out[u] = n
	}
	lister, err := r.kv.ListKeysFiltered(ctx, r.gw+".n.*")
	if err != nil {
		return nil, fmt.Errorf("registrations: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		u, err := get(ctx, r.kv, k)
		if err != nil {
			return nil, err
		}
		if u != "" {
			out[u] = "+" + strings.TrimPrefix(k, r.gw+".n.")
		}
	}
	return out, nil
}
