package component

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/bus"
)

// What the component does when a message it queued fails later.
//
// Resending. Outbound stanzas are stored with Nats-Msg-Id
// out:<sender full JID>|<stanza id>, so that a client resending after a
// reconnect is stored once. But a message that ended in an error must be
// sendable again under the same id, as clients do on "retry": each failure
// reported to the user bumps a failure count for the (sender, id) pair,
// kept in the messages bucket and written before the user is told, and a
// stanza whose id the bus already holds is stored again under
// out:<sender>|<id>#<count>. A copy of a message still in flight, or
// delivered, finds the same count and stays a duplicate.
//
// Telling. Errors go to the sender's full JID, and a server drops error
// messages to a resource that has gone (RFC 6121 §8.5.3.1): a Twilio
// "undelivered" minutes later, or a timeout after minutes of retries,
// would reach nobody. A failure reported later than lateAfter after the
// message was queued (or reported by a delivery status, which is always
// after the sending) is also told to the bare JID as a chat message from
// the contact, which the user's server stores offline and archives: a
// gateway notice that refers to the failed message (XEP-0461).

// lateAfter: a failure reported this long after the message was queued
// may find its sender's resource gone.
const lateAfter = 30 * time.Second

// failKey is the messages-bucket key counting the failures reported for
// one (sender full JID, stanza id): a hash, since JIDs hold characters
// that KV keys do not allow.
func (c *Component) failKey(user, ref string) string {
	sum := sha256.Sum256([]byte(user + "\x00" + ref))
	return "component." + c.o.Name + ".failed." + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// messagesKV is the messages bucket, opened on first use.
func (c *Component) messagesKV(ctx context.Context) (jetstream.KeyValue, error) {
	c.kvMu.Lock()
	defer c.kvMu.Unlock()
	if c.kv != nil {
		return c.kv, nil
	}
	kv, err := c.o.Bus.JetStream().KeyValue(ctx, bus.BucketMessages)
	if err != nil {
		return nil, fmt.Errorf("messages bucket: %w", err)
	}
	c.kv = kv
	return kv, nil
}

// failures returns how many failures were reported for (user, ref), with
// the entry's revision (0 when none).
func (c *Component) failures(ctx context.Context, user, ref string) (int, uint64, error) {
	kv, err := c.messagesKV(ctx)
	if err != nil {
		return 0, 0, err
	}
	e, err := kv.Get(ctx, c.failKey(user, ref))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n, err := strconv.Atoi(string(e.Value()))
	if err != nil {
		return 0, 0, fmt.Errorf("failure count %q: %w", e.Value(), err)
	}
	return n, e.Revision(), nil
}

// recordFailure counts one more failure reported for (user, ref). It must
// succeed before the user is told, or a quick resend would be swallowed.
func (c *Component) recordFailure(ctx context.Context, user, ref string) error {
	kv, err := c.messagesKV(ctx)
	if err != nil {
		return err
	}
	for range 5 { // compare-and-set; only a second process could race
		n, rev, err := c.failures(ctx, user, ref)
		if err != nil {
			return err
		}
		v := []byte(strconv.Itoa(n + 1))
		if rev == 0 {
			_, err = kv.Create(ctx, c.failKey(user, ref), v)
		} else {
			_, err = kv.Update(ctx, c.failKey(user, ref), v, rev)
		}
		if err == nil || !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return err
		}
	}
	return errors.New("failure count: changed concurrently five times")
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// resendMsgID is the Nats-Msg-Id for a stanza whose first id the bus
// already holds: a resend after failures is a new message, a copy of one
// in flight is not. "" when no failure was reported: a true duplicate.
func (c *Component) resendMsgID(ctx context.Context, user, ref, msgID string) (string, error) {
	n, _, err := c.failures(ctx, user, ref)
	if err != nil || n == 0 {
		return "", err
	}
	return msgID + "#" + strconv.Itoa(n), nil
}

// failureRef returns the stanza id a failure envelope is about, and
// whether it is a failure of an outbound message.
func failureRef(e *bus.Envelope) (string, bool) {
	switch {
	case e.Kind == bus.KindError && e.Error != nil && e.Error.Ref != "":
		return e.Error.Ref, true
	case e.Kind == bus.KindStatus && e.Status != nil && e.Status.State == bus.StateFailed && e.Status.Ref != "":
		return e.Status.Ref, true
	}
	return "", false
}

// queuedTimes remembers when recent outbound messages were queued, for
// lateAfter; entries older than that are forgotten, so it holds at most
// lateAfter's worth of traffic. Unknown means late (another process
// queued it, or this one restarted): the notice is then sent.
type queuedTimes struct {
	mu    sync.Mutex
	at    map[string]time.Time
	swept time.Time
}

func (q *queuedTimes) add(user, ref string, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.at == nil {
		q.at = map[string]time.Time{}
	}
	if now.Sub(q.swept) > lateAfter {
		for k, t := range q.at {
			if now.Sub(t) > lateAfter {
				delete(q.at, k)
			}
		}
		q.swept = now
	}
	q.at[user+"\x00"+ref] = now
}

// recent reports whether (user, ref) was queued less than lateAfter ago.
func (q *queuedTimes) recent(user, ref string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.at[user+"\x00"+ref]
	return ok && now.Sub(t) <= lateAfter
}

// noticeOut marks a message as the gateway's notice about a message of
// the user's (namespace of this project: no XEP defines one).
type noticeOut struct {
	Type      string `xml:"type,attr"`
	Ref       string `xml:"ref,attr"`
	Condition string `xml:"condition,attr,omitempty"`
	Code      string `xml:"code,attr,omitempty"`
}

// replyOut is a XEP-0461 reference to the message a notice is about.
type replyOut struct {
	To string `xml:"to,attr,omitempty"`
	ID string `xml:"id,attr"`
}

type storeHint struct{}

// failureNotice is the chat message that tells the user's bare JID, where
// the server stores it offline, that their message ref failed.
func failureNotice(id, from, user, ref, cond, code, text string) (outMessage, error) {
	u, err := jid.Parse(user)
	if err != nil {
		return outMessage{}, err
	}
	body := "⚠ Your message was not delivered"
	if text != "" {
		body += ": " + text
	}
	return outMessage{
		ID: id, From: from, To: u.Bare().String(), Type: "chat", Body: body,
		Reply:  &replyOut{To: user, ID: ref},
		Notice: &noticeOut{Type: "failed", Ref: ref, Condition: cond, Code: code},
		Store:  &storeHint{},
	}, nil
}
