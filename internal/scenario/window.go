package scenario

import "github.com/xmppgw/xmppgw/internal/proctest"

// Crossings is where the messages of one series crossed the tap towards
// the component (proctest.TapConn.ToComp), against what is known to have
// got through: what the socket window rule needs. XEP-0114 has no
// acknowledgements, so what was written into a component connection just
// before it was cut is gone without a trace. A missing message counts as
// in the window only if it crossed a connection that a fault cut (ended,
// and marked by proctest.Tap.MarkAbrupt: an orderly close grants nothing)
// after the last message on that connection known to have got through:
// a cut loses the tail of a stream, not its middle.
type Crossings struct {
	tap   proctest.TapSnapshot
	first map[int]crossing // each number's first crossing
	// lastThrough, per connection: the position of the last message known
	// to have got through; -1 for none.
	lastThrough []int
	// held: per connection that a fault cut and that carried messages of
	// the series, the numbers after the last one it carried and before the
	// first one a later connection carried (see HeldByServer).
	held []span
}

type span struct{ after, before int }

type crossing struct{ conn, at int }

// ToComponent reads series s (numbers 1 to n) off the tap; through(k)
// tells whether message k is known to have got through (delivered, or
// answered with an error).
func ToComponent(tap proctest.TapSnapshot, s Series, n int, through func(k int) bool) Crossings {
	c := Crossings{tap: tap, first: map[int]crossing{}, lastThrough: make([]int, len(tap))}
	for ci, conn := range tap {
		c.lastThrough[ci] = -1
		for at, id := range conn.ToComp {
			k := s.Number(id)
			if k == 0 || k > n {
				continue
			}
			if _, dup := c.first[k]; !dup {
				c.first[k] = crossing{ci, at}
			}
			if through(k) {
				c.lastThrough[ci] = at
			}
		}
	}
	for ci, conn := range tap {
		if !conn.Ended || !conn.Abrupt {
			continue
		}
		sp := span{after: 0, before: n + 1}
		for _, id := range conn.ToComp {
			if k := s.Number(id); k > sp.after && k <= n {
				sp.after = k
			}
		}
		if sp.after == 0 {
			continue // another domain's stream, or one that carried none
		}
		for _, later := range tap[ci+1:] {
			for _, id := range later.ToComp {
				if k := s.Number(id); k > 0 && k < sp.before {
					sp.before = k
				}
			}
		}
		c.held = append(c.held, sp)
	}
	return c
}

// HeldByServer reports whether message k, which never crossed the tap, was
// sent while the XMPP server held it for a component stream that a fault
// cut: after the last message that stream carried and before the first a
// later stream carried. The sender sends in number order, and XEP-0114
// has no acknowledgement: Prosody drops what it queued for a dead
// component, without a bounce. The caller checks that k was neither
// delivered nor answered.
func (c Crossings) HeldByServer(k int) bool {
	if c.Seen(k) {
		return false
	}
	for _, sp := range c.held {
		if k > sp.after && k < sp.before {
			return true
		}
	}
	return false
}

// Seen reports whether message k crossed the tap.
func (c Crossings) Seen(k int) bool {
	_, ok := c.first[k]
	return ok
}

// Tail returns the connection message k first crossed, and whether it
// came after the last message on that connection known to have got
// through. tail is false too when k never crossed.
func (c Crossings) Tail(k int) (conn proctest.TapConn, tail bool) {
	p, ok := c.first[k]
	if !ok {
		return proctest.TapConn{}, false
	}
	return c.tap[p.conn], p.at > c.lastThrough[p.conn]
}

// Window reports whether message k is in the socket window: in the tail
// of a connection that a fault cut.
func (c Crossings) Window(k int) bool {
	conn, tail := c.Tail(k)
	return tail && conn.Ended && conn.Abrupt
}
