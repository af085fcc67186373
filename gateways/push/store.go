package push

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Registrations live in the shared registrations bucket, under the
// gateway's prefix:
//
//	<gw>.push.node.<node>              → the registration (JSON)
//	<gw>.push.device.<hash>            → node: the device's registration, so a
//	                                     device registering again keeps its node
//	<gw>.push.user.<hash>.<node>       → "": the user's devices (counted, listed)
//
// hash is a SHA-256 prefix (hex) of the user and the device, so that no
// address is in a key. The secret is kept as its SHA-256: a copy of the
// bucket does not let anyone publish.

// Services.
const (
	UnifiedPush = "unifiedpush"
	FCM         = "fcm"
	APNs        = "apns"
)

type registration struct {
	User    string `json:"user"`
	Service string `json:"service"`
	// Endpoint is the UnifiedPush endpoint URL; Token the FCM or APNs
	// device token; Device the client's id of the device.
	Endpoint   string `json:"endpoint,omitempty"`
	Token      string `json:"token,omitempty"`
	Device     string `json:"device,omitempty"`
	SecretHash string `json:"secret_sha256"`
	Content    bool   `json:"content,omitempty"` // the device asked for sender and body
	// P256DH and Auth are a UnifiedPush app's Web Push keys (RFC 8291,
	// base64url): when set, pushes are encrypted for the app.
	P256DH  string    `json:"p256dh,omitempty"`
	Auth    string    `json:"auth,omitempty"`
	Created time.Time `json:"created"`
}

type store struct {
	kv jetstream.KeyValue
	gw string
}

func (s *store) nodeKey(node string) string { return s.gw + ".push.node." + node }
func (s *store) deviceKey(user, service, device string) string {
	return s.gw + ".push.device." + hashOf(user, service, device)
}
func (s *store) userPrefix(user string) string { return s.gw + ".push.user." + hashOf(user) }

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// errNoNode: no registration has the node (never had, unregistered, or
// removed because its push service said the device is gone).
var errNoNode = errors.New("no such node")

// errTooMany: the user has MaxDevicesPerUser registrations.
var errTooMany = errors.New("too many devices")

func (s *store) get(ctx context.Context, node string) (*registration, error) {
	if !validNode(node) {
		return nil, errNoNode
	}
	e, err := s.kv.Get(ctx, s.nodeKey(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, errNoNode
	}
	if err != nil {
		return nil, err
	}
	var r registration
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("registration %s: %w", node, err)
	}
	return &r, nil
}

// register stores r for its device and returns its node and a fresh
// secret. A device registered before keeps its node; its secret is
// replaced (clients enable push again after registering).
func (s *store) register(ctx context.Context, r registration, maxDevices int) (node, secret string, err error) {
	secret = randomString(24)
	sum := sha256.Sum256([]byte(secret))
	r.SecretHash = hex.EncodeToString(sum[:])
	r.Created = time.Now().UTC()
	data, err := json.Marshal(r)
	if err != nil {
		return "", "", err
	}
	dk := s.deviceKey(r.User, r.Service, r.Device)
	if e, err := s.kv.Get(ctx, dk); err == nil {
		node = string(e.Value())
		if old, err := s.get(ctx, node); err == nil && old.User == r.User {
			if _, err := s.kv.Put(ctx, s.nodeKey(node), data); err != nil {
				return "", "", err
			}
			return node, secret, nil
		}
		// A device key without its registration (removed as gone, or a
		// crash between writes): start afresh.
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", "", err
	}
	n, err := s.count(ctx, r.User)
	if err != nil {
		return "", "", err
	}
	if n >= maxDevices {
		return "", "", errTooMany
	}
	node = newNode()
	if _, err := s.kv.Create(ctx, s.nodeKey(node), data); err != nil {
		return "", "", err
	}
	if _, err := s.kv.Put(ctx, s.userPrefix(r.User)+"."+node, nil); err != nil {
		return "", "", err
	}
	if _, err := s.kv.Put(ctx, dk, []byte(node)); err != nil {
		return "", "", err
	}
	return node, secret, nil
}

// count is how many devices user has registered.
func (s *store) count(ctx context.Context, user string) (int, error) {
	l, err := s.kv.ListKeysFiltered(ctx, s.userPrefix(user)+".*")
	if err != nil {
		return 0, err
	}
	n := 0
	for range l.Keys() {
		n++
	}
	return n, nil
}

// remove deletes the registration of node and its other keys.
func (s *store) remove(ctx context.Context, node string, r *registration) error {
	var errs []error
	for _, k := range []string{s.deviceKey(r.User, r.Service, r.Device), s.userPrefix(r.User) + "." + node, s.nodeKey(node)} {
		if err := s.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// secretMatches compares in constant time.
func (r *registration) secretMatches(secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	want, err := hex.DecodeString(r.SecretHash)
	return err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1
}

var nodeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newNode is 128 random bits, lower-case base32 (26 characters): safe in
// KV keys, URLs and RFC 8030 Topic headers.
func newNode() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return strings.ToLower(nodeEncoding.EncodeToString(b))
}

func validNode(n string) bool {
	if len(n) != 26 {
		return false
	}
	for _, c := range n {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// randomString is n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
