package scenario

import (
	"slices"
	"strings"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// Inbound is the account of the In series: what the poster was answered
// and what alice received. It has no lock of its own: a suite keeps it
// under the lock that guards the rest of its counts, so that a snapshot of
// them is consistent.
type Inbound struct {
	n        int
	Attempts []int          // webhook posts per number
	Accepted []bool         // answered 200
	Status   map[string]int // answers other than 200, by status or "conn-error"
	Received []int          // copies alice received, per number
	IDs      [][]string     // their stanza ids
	Arrivals []int          // first arrivals, in order
}

// NewInbound is the account of a series of n messages.
func NewInbound(n int) Inbound {
	return Inbound{
		n:        n,
		Attempts: make([]int, n+1),
		Accepted: make([]bool, n+1),
		Status:   map[string]int{},
		Received: make([]int, n+1),
		IDs:      make([][]string, n+1),
	}
}

// Answer records one post of message i and its answer, as PostWebhook
// reports it.
func (in *Inbound) Answer(i int, ok bool, answer string) {
	in.Attempts[i]++
	if ok {
		in.Accepted[i] = true
	} else {
		in.Status[answer]++
	}
}

// Receive folds in a message alice received, if it is one of the series
// from the friend.
func (in *Inbound) Receive(st xmpptest.Stanza) {
	k := In.Number(st.Body)
	if k <= 0 || k > in.n || !strings.HasPrefix(st.From, FriendJID) {
		return
	}
	if in.Received[k] == 0 {
		in.Arrivals = append(in.Arrivals, k)
	}
	in.Received[k]++
	in.IDs[k] = append(in.IDs[k], st.ID)
}

// SameID reports whether every copy of message k alice received came with
// one stanza id: a redelivery of the same stanza, which clients that
// deduplicate by id show once.
func (in *Inbound) SameID(k int) bool {
	return len(slices.Compact(slices.Clone(in.IDs[k]))) <= 1
}

// Window applies the socket window rule (see Crossings) to what the
// component wrote towards the server: a message on a connection that a
// fault cut, after the last one on it that alice received, is in the
// window. The gateway writes inbound messages one at a time, in order;
// when the server closed first, the write in progress at that moment may
// have been taken by TCP but not by the tap, which has to close its end
// (so that the gateway's next write fails, as on a direct connection) with
// it unread. So the next number after the last one a cut connection
// carried is in the window too, if the gateway accepted it and nobody saw
// it at all; inFlight counts those.
func (in *Inbound) Window(tap proctest.TapSnapshot) (window map[int]bool, inFlight int) {
	window = map[int]bool{}
	onTap := map[int]bool{}
	for _, c := range tap {
		for _, body := range slices.Concat(c.ToServer, c.ToServerAfterClose) {
			onTap[In.Number(body)] = true
		}
	}
	for _, c := range tap {
		if !c.Ended || !c.Abrupt {
			continue
		}
		lastRecv := -1
		for at, body := range c.ToServer {
			if k := In.Number(body); k > 0 && k <= in.n && in.Received[k] > 0 {
				lastRecv = at
			}
		}
		last := 0
		for at, body := range c.ToServer {
			k := In.Number(body)
			if k > 0 && k <= in.n && at > lastRecv {
				window[k] = true
			}
			last = max(last, k)
		}
		if k := last + 1; last > 0 && k <= in.n && !onTap[k] && in.Received[k] == 0 && in.Accepted[k] {
			window[k] = true
			inFlight++
		}
	}
	return window, inFlight
}

// RewrittenAfterCut is the messages written twice across a connection a
// fault cut (kill -9): the last inbound message the cut connection carried
// and the first the next one carried. The gateway writes a message, then
// acknowledges it on the bus; killed in between, its acknowledgement is
// lost with it and the bus hands the message over again — XEP-0114 has no
// acknowledgement that would tell the gateway the first write arrived.
// With the same stanza id both times (see SameID) clients show it once.
func (in *Inbound) RewrittenAfterCut(tap proctest.TapSnapshot) map[int]bool {
	rewritten := map[int]bool{}
	numbers := func(c proctest.TapConn) []int {
		var ks []int
		for _, body := range c.ToServer {
			if k := In.Number(body); k > 0 && k <= in.n {
				ks = append(ks, k)
			}
		}
		return ks
	}
	for ci, c := range tap {
		if !c.Ended || !c.Abrupt || ci+1 >= len(tap) {
			continue
		}
		before, after := numbers(c), numbers(tap[ci+1])
		if len(before) > 0 && len(after) > 0 && before[len(before)-1] == after[0] {
			rewritten[after[0]] = true
		}
	}
	return rewritten
}
