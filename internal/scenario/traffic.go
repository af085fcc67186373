package scenario

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/internal/telnyxtest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// Series is a numbered series of messages, named by the prefix of their
// ids; the number is the index in the series, from 1. The fixed width
// keeps the ids apart from anything else a scenario sends (probes,
// replies).
type Series string

// The suites' series.
const (
	Out  Series = "o-" // alice to Twilio: stanza ids and bodies
	In   Series = "i-" // Twilio to alice: webhook bodies
	Echo Series = "s-" // alice to the sandbox, which answers "echo: s-00001"
)

// ID is message i of the series: "o-00042".
func (s Series) ID(i int) string { return fmt.Sprintf("%s%05d", s, i) }

// Number parses an ID of the series ("o-00042" into 42); 0 if id is not
// one.
func (s Series) Number(id string) int {
	rest, ok := strings.CutPrefix(id, string(s))
	if !ok || len(rest) != 5 {
		return 0
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return 0
	}
	return n
}

// Chat is a chat message to to whose stanza id is also its body, so that
// an error reply names it as well as a delivered copy does.
func Chat(to, id string) string {
	return fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>%s</body></message>`, to, id, id)
}

// Due waits until message i (from 1) of a series paced at rate per second
// from began is due; false when ctx ended first. The pace is a schedule,
// not a guess: message i is due at (i-1)/rate after began, and a generator
// held up (by a retry) catches up at once, as a backlog would.
func Due(ctx context.Context, began time.Time, rate float64, i int) bool {
	d := time.Until(began.Add(time.Duration(float64(i-1) / rate * float64(time.Second))))
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// PostWebhook is Twilio delivering message i of the In series from Friend
// to alice's number at url: one signed webhook (its own MessageSid),
// posted again with the same parameters until the gateway answers 200, as
// Twilio retries, after 50 ms and then twice as long each time, up to 1 s.
// answered is called after every post: ok for a 200, else answer is the
// status or "conn-error". It returns false when ctx ended first.
func PostWebhook(ctx context.Context, tw *twiliotest.Server, url string, i int, answered func(ok bool, answer string)) bool {
	params := tw.InboundSMS(Friend, AliceNumber, In.ID(i))
	sig := twiliotest.Sign(AuthToken, url, params)
	return Repost(ctx, func(ctx context.Context) (int, error) {
		status, _, err := twiliotest.PostForm(ctx, url, sig, params)
		return status, err
	}, answered)
}

// PostTelnyx is PostWebhook for Telnyx: message i of the In series as a
// message.received event (its own id), signed each time it is posted.
func PostTelnyx(ctx context.Context, tx *telnyxtest.Server, url string, i int, answered func(ok bool, answer string)) bool {
	body := tx.Received(Friend, []string{AliceNumber}, In.ID(i))
	return Repost(ctx, func(ctx context.Context) (int, error) {
		status, _, err := tx.Post(ctx, url, body)
		return status, err
	}, answered)
}

// Repost calls post until it answers 200, after 50 ms and then twice as
// long each time, up to 1 s, as providers retry webhooks; answered is
// called after every post. It returns false when ctx ended first.
func Repost(ctx context.Context, post func(context.Context) (int, error), answered func(ok bool, answer string)) bool {
	backoff := 50 * time.Millisecond
	for {
		status, err := post(ctx)
		answer := strconv.Itoa(status)
		if err != nil {
			answer = "conn-error"
		}
		ok := err == nil && status == http.StatusOK
		answered(ok, answer)
		if ok {
			return true
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		backoff = min(2*backoff, time.Second)
	}
}

// ErrorCondition is what an error stanza reports, "type/condition", with
// Prosody's own bounce while the component is not connected marked as
// such: a correct report, but not the gateway's.
func ErrorCondition(st xmpptest.Stanza) string {
	cond := st.ErrorType + "/" + st.ErrorCondition
	if strings.Contains(st.Raw, "xmpp:prosody.im/protocol/component") {
		cond += " (Prosody: component not connected)"
	}
	if strings.Contains(st.ErrorText, "may still be delivered") {
		cond += " " + OutcomeUnknown
	}
	return cond
}

// OutcomeUnknown marks, in ErrorCondition, an error in which the gateway
// said the message may still be delivered (its store took the message and
// did not answer): unlike other errors, such a message may arrive.
const OutcomeUnknown = "(outcome unknown)"

// TwilioCopies counts the messages of the Out series (numbers 1 to n) the
// fake Twilio accepted, per number.
func TwilioCopies(msgs []twiliotest.Message, n int) []int {
	bodies := make([]string, len(msgs))
	for i, m := range msgs {
		bodies[i] = m.Body
	}
	return Copies(bodies, n)
}

// Copies counts the messages of the Out series (numbers 1 to n) among the
// texts a provider accepted, per number.
func Copies(bodies []string, n int) []int {
	copies := make([]int, n+1)
	for _, b := range bodies {
		if k := Out.Number(b); k > 0 && k <= n {
			copies[k]++
		}
	}
	return copies
}

// TwilioOrder is the numbers of the Out series (1 to n) in the order their
// first copy reached the fake Twilio, for OutOfOrder.
func TwilioOrder(msgs []twiliotest.Message, n int) []int {
	bodies := make([]string, len(msgs))
	for i, m := range msgs {
		bodies[i] = m.Body
	}
	return Order(bodies, n)
}

// Order is the numbers of the Out series (1 to n) in the order their first
// copy is among the texts a provider accepted, for OutOfOrder.
func Order(bodies []string, n int) []int {
	var order []int
	seen := map[int]bool{}
	for _, b := range bodies {
		if k := Out.Number(b); k > 0 && k <= n && !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	return order
}
