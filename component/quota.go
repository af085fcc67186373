package component

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// quotas limits how many messages each user may send through the gateway,
// so that one account cannot run up the provider's bill. A token bucket per
// bare JID: Messages may be sent at once, refilled evenly over Per.
type quotas struct {
	messages int
	per      time.Duration
	mu       sync.Mutex
	users    map[string]*rate.Limiter
}

func newQuotas(messages int, per time.Duration) *quotas {
	if messages <= 0 || per <= 0 {
		return nil // unlimited
	}
	return &quotas{messages: messages, per: per, users: map[string]*rate.Limiter{}}
}

// quotaExceeded takes one message from user's quota, or says why not.
func (c *Component) quotaExceeded(user string) *refusal {
	q := c.quotas
	if q == nil {
		return nil
	}
	bare := strings.ToLower(user)
	if i := strings.IndexByte(bare, '/'); i >= 0 {
		bare = bare[:i]
	}
	q.mu.Lock()
	l, ok := q.users[bare]
	if !ok {
		l = rate.NewLimiter(rate.Every(q.per/time.Duration(q.messages)), q.messages)
		q.users[bare] = l
	}
	q.mu.Unlock()
	if l.Allow() {
		return nil
	}
	return &refusal{"wait", "resource-constraint",
		fmt.Sprintf("you have reached this gateway's limit of %d messages per %s; try again later", q.messages, q.per)}
}
