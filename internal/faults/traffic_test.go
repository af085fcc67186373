//go:build faults

package faults_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/scenario"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// env is one scenario's world: Prosody, the component tap, the fake Twilio,
// the gateway process, alice's XMPP sessions, and the two traffic
// generators with what they did.
type env struct {
	t     *testing.T
	n     int
	conv  int // conversations of the outbound series
	rate  float64
	dir   string
	began time.Time

	srv  *xmpptest.Server
	tap  *proctest.Tap
	prov provider
	gw   *gateway

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions []*session    // alice's sessions in login order; the last is current
	relogin  chan struct{} // closed and replaced when a session is added
	// Outbound, written by the sender.
	outOn      []int // outOn[i]: 1-based index of the session message i was written on; 0: not written
	outWritten int
	outDone    bool
	// Inbound: written by the poster, and folded from what alice
	// received (refresh).
	inbound scenario.Inbound
	inOK    int
	inDone  bool
	// Folded from what alice received (refresh).
	outErr   []string // outErr[i]: the error condition alice got for message i
	errConds map[string]int
	probes   int
	// Timeline and remarks for the report.
	events []string
	notes  []string
}

// session is one alice login and how much of its input was folded in.
type session struct {
	c    *xmpptest.Client
	seen int
}

// counts is a snapshot of progress.
type counts struct {
	outWritten, outDelivered, outErrors, outCopies int
	inOK, inReceived, inRefused                    int
	outDone, inDone                                bool
}

type envOptions struct {
	rate    float64 // messages per second each way; default -rate
	offline bool    // Prosody keeps messages for offline users
	dataDir string  // bus.data_dir; default a directory in t.TempDir()
	busURL  string  // external NATS instead of the embedded server
	timeout time.Duration
	// provider is "twilio" (default) or "telnyx".
	provider string
	// conversations the outbound series is spread over; default
	// scenario.Conversations.
	conversations int
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{
		t: t, n: suite.N(), rate: suite.Rate(), dir: t.TempDir(),
		relogin:  make(chan struct{}),
		errConds: map[string]int{},
	}
	if o.rate > 0 {
		e.rate = o.rate
	}
	e.conv = cmp.Or(o.conversations, scenario.Conversations)
	e.outOn = make([]int, e.n+1)
	e.outErr = make([]string, e.n+1)
	e.inbound = scenario.NewInbound(e.n)

	e.srv = xmpptest.StartProsody(t, xmpptest.Options{
		Components: map[string]string{scenario.SMSDomain: "secret"},
		Users:      map[string]string{"alice": "password"},
		Offline:    o.offline,
	})
	e.tap = proctest.StartTap(t, e.srv.ComponentAddr())
	e.prov = newProvider(t, o.provider)
	if o.dataDir == "" {
		o.dataDir = filepath.Join(e.dir, "data")
	}
	e.gw = startGateway(t, e.dir, gatewayOptions{
		componentAddr:  e.tap.Addr(),
		provider:       e.prov,
		dataDir:        o.dataDir,
		busURL:         o.busURL,
		requestTimeout: o.timeout,
	})
	e.addSession(xmpptest.Login(t, e.srv, "alice", "password"))
	e.ctx, e.cancel = context.WithCancel(context.Background())
	// Registered last, so it runs first: the generators stop before the
	// processes they talk to.
	t.Cleanup(func() {
		e.cancel()
		e.wg.Wait()
	})
	return e
}

func (e *env) webhookURL() string { return e.gw.url + e.prov.webhookPath() }

func (e *env) addSession(c *xmpptest.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sessions = append(e.sessions, &session{c: c})
	close(e.relogin)
	e.relogin = make(chan struct{})
}

// start runs the two generators, both paced at e.rate (see scenario.Due).
func (e *env) start() {
	e.began = time.Now()
	e.wg.Add(2)
	go e.sendOutbound()
	go e.postInbound()
}

// sendOutbound is alice writing o-00001… to the friend's SMS JID. A write
// that fails (the server went away) is written again on the next session,
// as a client does with what it could not send.
func (e *env) sendOutbound() {
	defer e.wg.Done()
	defer func() {
		e.mu.Lock()
		e.outDone = true
		e.mu.Unlock()
	}()
	for i := 1; i <= e.n; i++ {
		if !scenario.Due(e.ctx, e.began, e.rate, i) {
			return
		}
		stanza := scenario.Chat(scenario.OutboundToOf(i, e.conv), scenario.Out.ID(i))
		for {
			e.mu.Lock()
			idx, s, relogin := len(e.sessions), e.sessions[len(e.sessions)-1], e.relogin
			e.mu.Unlock()
			if err := s.c.Send(stanza); err == nil {
				e.mu.Lock()
				e.outOn[i] = idx
				e.outWritten++
				e.mu.Unlock()
				break
			}
			select {
			case <-relogin:
			case <-e.ctx.Done():
				return
			}
		}
	}
}

// postInbound is Twilio delivering i-00001… to alice's number (see
// scenario.PostWebhook).
func (e *env) postInbound() {
	defer e.wg.Done()
	defer func() {
		e.mu.Lock()
		e.inDone = true
		e.mu.Unlock()
	}()
	url := e.webhookURL()
	for i := 1; i <= e.n; i++ {
		if !scenario.Due(e.ctx, e.began, e.rate, i) {
			return
		}
		if !e.prov.post(e.ctx, url, i, func(ok bool, answer string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.inbound.Answer(i, ok, answer)
			if ok {
				e.inOK++
			}
		}) {
			return
		}
	}
}

// refresh folds in what alice's sessions received since the last call and
// returns the progress, Twilio's side included.
func (e *env) refresh() counts {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sessions {
		raws := s.c.Stanzas()
		for _, raw := range raws[s.seen:] {
			st, err := xmpptest.ParseStanza(raw)
			if err != nil || st.Kind != "message" {
				continue
			}
			if st.Type == "error" {
				if k := scenario.Out.Number(st.ID); k > 0 && k <= e.n && e.outErr[k] == "" {
					cond := scenario.ErrorCondition(st)
					e.outErr[k] = cond
					e.errConds[cond]++
				}
				continue
			}
			e.inbound.Receive(st)
		}
		s.seen = len(raws)
	}
	c := counts{outWritten: e.outWritten, inOK: e.inOK, outDone: e.outDone, inDone: e.inDone, inReceived: len(e.inbound.Arrivals)}
	for _, n := range e.inbound.Status {
		c.inRefused += n
	}
	copies := e.providerCopies()
	for k := 1; k <= e.n; k++ {
		c.outCopies += copies[k]
		if copies[k] > 0 {
			c.outDelivered++
		} else if e.outErr[k] != "" {
			c.outErrors++
		}
	}
	return c
}

// providerCopies counts the messages the fake provider accepted, per number.
func (e *env) providerCopies() []int { return scenario.Copies(texts(e.prov), e.n) }

// probe sends one fresh message each way, outside the numbered series (it
// is not counted), and waits until both arrived: alice's at Twilio, the
// webhook's (re-posted until 200) at alice. It reports which did.
func (e *env) probe(timeout time.Duration) (out, in bool) {
	e.mu.Lock()
	e.probes++
	id := fmt.Sprintf("probe-%d", e.probes)
	s := e.sessions[len(e.sessions)-1]
	e.mu.Unlock()
	_ = s.c.Send(scenario.Chat(scenario.FriendJID, id))
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	go func() {
		url := e.webhookURL()
		for ctx.Err() == nil {
			if e.prov.postOnce(ctx, url, id) {
				return
			}
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}()
	// A sender told to retry later does so: the outbound probe is sent
	// again after each error stanza that answers it.
	resent := 0
	proctest.Poll(timeout, 50*time.Millisecond, func() bool {
		if !out {
			out = slices.Contains(texts(e.prov), id)
		}
		if !out {
			errs := 0
			for _, raw := range s.c.Stanzas() {
				if strings.Contains(raw, `type="error"`) && strings.Contains(raw, `id="`+id+`"`) {
					errs++
				}
			}
			if errs > resent {
				resent = errs
				_ = s.c.Send(scenario.Chat(scenario.FriendJID, id))
			}
		}
		if !in {
			e.mu.Lock()
			for _, s := range e.sessions {
				if slices.ContainsFunc(s.c.Stanzas(), func(raw string) bool { return strings.Contains(raw, "<body>"+id+"</body>") }) {
					in = true
				}
			}
			e.mu.Unlock()
		}
		return out && in
	})
	return out, in
}

// event records a step of the fault timeline.
func (e *env) event(format string, args ...any) {
	msg := fmt.Sprintf("%6.2fs  ", time.Since(e.began).Seconds()) + fmt.Sprintf(format, args...)
	e.t.Log(msg)
	e.mu.Lock()
	e.events = append(e.events, msg)
	e.mu.Unlock()
}

// note adds a remark to the scenario's report line.
func (e *env) note(format string, args ...any) {
	e.mu.Lock()
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// waitFor polls the progress until cond holds. It fails the test (without
// stopping it: the accounting still runs) when the deadline passes.
func (e *env) waitFor(what string, timeout time.Duration, cond func(counts) bool) bool {
	e.t.Helper()
	var c counts
	ok := proctest.Poll(timeout, 50*time.Millisecond, func() bool {
		c = e.refresh()
		return cond(c)
	})
	if !ok {
		e.t.Errorf("waiting for %s: not within %v (%+v)", what, timeout, c)
	}
	if crashed, err := e.gw.Crashed(); crashed {
		e.t.Errorf("xmppgw exited by itself (%v):\n%s", err, e.gw.LogTail(40))
	}
	return ok
}

// settle waits until the traffic has settled (see scenario.Settle): the
// gateway's bus empty and the counts still. It gives up at the deadline.
func (e *env) settle(timeout time.Duration) bool {
	return scenario.Settle(timeout, scenario.Progress[counts]{
		Refresh: func() (counts, bool) {
			c := e.refresh()
			return c, c.outDone && c.inDone
		},
		Pending: e.gw.pending,
		Clean: func() bool {
			r := e.account()
			return r[0].lost == 0 && r[1].lost == 0
		},
		Event: e.event,
	})
}

// row is one line of the result table.
type row struct {
	scenario, dir                                        string
	sent, delivered, errors, lost, window, dup           int
	retries, outOfOrder                                  int
	lostIDs, windowIDs                                   []int
	reportedButDelivered, notSent, c2sWindow, compWindow int
	misreported                                          []int // reported as failed (outcome known), delivered all the same
	srvWindow                                            int   // outbound: queued in the XMPP server for a stream that died
	closeWindow                                          int   // outbound: crossed the component's </stream:stream>, store refusing
	// dupWindow: inbound copies written again because the first write's
	// acknowledgement was lost — the gateway was killed right after the
	// write, or (it logs them) the store failed before recording it — each
	// with the stanza id of the first copy. Not counted in dup.
	dupWindow int
	inFlight  int // inbound window: written while the connection closed, unseen
}

// account classifies every message. The socket window (see windowRule)
// is only granted on connections that ended, to messages after the last
// one known to have got through on that connection.
func (e *env) account() [2]row {
	e.mu.Lock()
	defer e.mu.Unlock()
	tap := e.tap.Snapshot()
	copies := e.providerCopies()

	// Outbound.
	out := row{dir: "out"}
	toComp := scenario.ToComponent(tap, scenario.Out, e.n, func(k int) bool { return copies[k] > 0 || e.outErr[k] != "" })
	// Per alice session: the last message written on it that reached
	// Prosody (the component saw it, or someone answered it).
	lastReached := make([]int, len(e.sessions)+1)
	for k := 1; k <= e.n; k++ {
		if s := e.outOn[k]; s > 0 {
			if toComp.Seen(k) || copies[k] > 0 || e.outErr[k] != "" {
				lastReached[s] = k
			}
		}
	}
	out.outOfOrder = scenario.OutOfOrderOver(scenario.Order(texts(e.prov), e.n), e.conv)
	// Messages the gateway says it could neither store nor answer because
	// its stream had closed (it read them after sending its own
	// </stream:stream>, with the store refusing writes).
	unanswerable := map[int]bool{}
	for _, l := range e.gw.LogLines(func(l string) bool { return strings.Contains(l, "neither stored nor reported") }) {
		if _, id, ok := strings.Cut(l, " id="); ok {
			id, _, _ = strings.Cut(id, " ")
			unanswerable[scenario.Out.Number(id)] = true
		}
	}
	for k := 1; k <= e.n; k++ {
		if e.outOn[k] == 0 {
			out.notSent++
			continue
		}
		out.sent++
		switch {
		case copies[k] > 0:
			out.delivered++
			out.dup += copies[k] - 1
			if e.outErr[k] != "" {
				out.reportedButDelivered++
				if !strings.Contains(e.outErr[k], scenario.OutcomeUnknown) {
					out.misreported = append(out.misreported, k)
				}
			}
		case e.outErr[k] != "":
			out.errors++
		default:
			conn, tail := toComp.Tail(k)
			seen := toComp.Seen(k)
			switch {
			case toComp.Window(k):
				out.window++
				out.compWindow++
				out.windowIDs = append(out.windowIDs, k)
			case tail && conn.CompClosed && unanswerable[k]:
				// Prosody wrote it before it read the component's close,
				// after the last message the connection got through: the
				// gateway read it with its stream closed, and says so.
				// XEP-0114 has no acknowledgement, and a closed stream
				// takes no error reply.
				out.window++
				out.closeWindow++
				out.windowIDs = append(out.windowIDs, k)
			case !seen && e.sessionEnded(e.outOn[k]) && k > lastReached[e.outOn[k]]:
				out.window++
				out.c2sWindow++
				out.windowIDs = append(out.windowIDs, k)
			case toComp.HeldByServer(k):
				out.window++
				out.srvWindow++
				out.windowIDs = append(out.windowIDs, k)
			default:
				out.lost++
				out.lostIDs = append(out.lostIDs, k)
			}
		}
	}
	out.retries = e.prov.requests() - out.delivered

	// Inbound.
	in := row{dir: "in", sent: e.n}
	inWindow, inFlight := e.inbound.Window(tap)
	in.inFlight = inFlight
	// Stanza ids of inbound messages the gateway wrote as the store failed
	// (it says so, naming them): a repeat of one after the repair is the
	// window, if every copy has the same id; so is the message written
	// last before kill -9 and again first after it (RewrittenAfterCut).
	writtenAsStoreFailed := map[string]bool{}
	for _, l := range e.gw.LogLines(func(l string) bool { return strings.Contains(l, "may be delivered again after the repair") }) {
		if _, id, ok := strings.Cut(l, " stanza_id="); ok {
			id, _, _ = strings.Cut(id, " ")
			writtenAsStoreFailed[id] = true
		}
	}
	rewritten := e.inbound.RewrittenAfterCut(tap)
	attempts := 0
	for k := 1; k <= e.n; k++ {
		attempts += e.inbound.Attempts[k]
		switch {
		case e.inbound.Received[k] > 1 && e.inbound.SameID(k) && (writtenAsStoreFailed[e.inbound.IDs[k][0]] || rewritten[k]):
			in.delivered++
			in.dupWindow += e.inbound.Received[k] - 1
		case e.inbound.Received[k] > 0:
			in.delivered++
			in.dup += e.inbound.Received[k] - 1
		case !e.inbound.Accepted[k]:
			in.errors++ // never answered 200: the provider still has it
		case inWindow[k]:
			in.window++
			in.compWindow++
			in.windowIDs = append(in.windowIDs, k)
		default:
			in.lost++
			in.lostIDs = append(in.lostIDs, k)
		}
	}
	in.retries = attempts - e.inOK
	in.outOfOrder = scenario.OutOfOrder(e.inbound.Arrivals)
	return [2]row{out, in}
}

func (e *env) sessionEnded(idx int) bool {
	select {
	case <-e.sessions[idx-1].c.Done():
		return true
	default:
		return false
	}
}

// describe lists what the report needs besides the numbers.
func (e *env) describe(r [2]row) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	if len(e.errConds) > 0 {
		b.WriteString("errors to alice: " + scenario.Tally(e.errConds) + "; ")
	}
	if len(e.inbound.Status) > 0 {
		b.WriteString("webhook answers other than 200: " + scenario.Tally(e.inbound.Status) + "; ")
	}
	if n := r[0].notSent; n > 0 {
		fmt.Fprintf(&b, "%d outbound never written by alice; ", n)
	}
	if r[0].window > 0 {
		fmt.Fprintf(&b, "outbound window: %d on the component socket, %d queued in Prosody for the dead stream, %d read after the component closed its stream, with the store refusing, %d on alice's c2s socket %v; ",
			r[0].compWindow, r[0].srvWindow, r[0].closeWindow, r[0].c2sWindow, scenario.Short(r[0].windowIDs))
	}
	if r[1].window > 0 {
		fmt.Fprintf(&b, "inbound window %v (%d of them in the write when the connection closed); ", scenario.Short(r[1].windowIDs), r[1].inFlight)
	}
	if r[1].dupWindow > 0 {
		fmt.Fprintf(&b, "inbound: %d copies of messages written again after a write whose acknowledgement was lost (kill -9 right after it, or the store failing as the gateway logged; same stanza id); ", r[1].dupWindow)
	}
	if r[0].lost > 0 {
		fmt.Fprintf(&b, "LOST outbound %v; ", scenario.Short(r[0].lostIDs))
	}
	if r[1].lost > 0 {
		fmt.Fprintf(&b, "LOST inbound %v; ", scenario.Short(r[1].lostIDs))
	}
	if r[0].dup > 0 {
		fmt.Fprintf(&b, "outbound duplicates: %s; ", e.duplicatesLocked())
	}
	if r[1].dup > 0 {
		var ids []int
		same := 0
		for k := 1; k <= e.n; k++ {
			if e.inbound.Received[k] > 1 {
				ids = append(ids, k)
				if e.inbound.SameID(k) {
					same++
				}
			}
		}
		fmt.Fprintf(&b, "inbound duplicates %s (%d of %d with the same stanza id each time); ", scenario.Short(ids), same, len(ids))
	}
	if r[0].reportedButDelivered > 0 {
		var parts []string
		copies := e.providerCopies()
		for k := 1; k <= e.n; k++ {
			if e.outErr[k] != "" && copies[k] > 0 {
				parts = append(parts, scenario.Out.ID(k)+" ("+e.outErr[k]+")")
			}
		}
		fmt.Fprintf(&b, "reported as errors but delivered: %s; ", strings.Join(parts, ", "))
	}
	for _, n := range e.notes {
		b.WriteString(n + "; ")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// duplicatesLocked describes the outbound numbers Twilio got more than once:
// when each copy was created, relative to the start of the traffic.
func (e *env) duplicatesLocked() string {
	created := map[int][]string{}
	for _, m := range e.prov.accepted() {
		if k := scenario.Out.Number(m.text); k > 0 {
			created[k] = append(created[k], fmt.Sprintf("%.2fs", m.created.Sub(e.began).Seconds()))
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(created)) {
		if len(created[k]) > 1 {
			parts = append(parts, fmt.Sprintf("%s at %s", scenario.Out.ID(k), strings.Join(created[k], "+")))
		}
	}
	if len(parts) > 12 {
		parts = append(parts[:12], fmt.Sprintf("… (%d in all)", len(parts)))
	}
	return strings.Join(parts, ", ")
}

// trace tells where the tap saw message k of series s (Out or In):
// "conn#2[ended] pos 17/40".
func (e *env) trace(s scenario.Series, k int) string {
	var where []string
	want := s.ID(k)
	for ci, c := range e.tap.Snapshot() {
		list, after := c.ToComp, c.ToCompAfterClose
		if s == scenario.In {
			list, after = c.ToServer, c.ToServerAfterClose
		}
		state := "open"
		if c.Ended {
			state = "ended"
		}
		for at, x := range list {
			if x == want {
				where = append(where, fmt.Sprintf("conn#%d[%s] pos %d/%d", ci+1, state, at+1, len(list)))
			}
		}
		for at, x := range after {
			if x == want {
				where = append(where, fmt.Sprintf("conn#%d[%s] written after the writer's own </stream:stream> (%d of %d such)", ci+1, state, at+1, len(after)))
			}
		}
	}
	if len(where) == 0 {
		return "not seen on the component socket"
	}
	return strings.Join(where, ", ")
}

// resultTable is the report of every scenario.
type resultTable struct {
	mu    sync.Mutex
	rows  []row
	notes []string
}

func (r *resultTable) add(rows [2]row, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, rows[0], rows[1])
	if note != "" {
		r.notes = append(r.notes, rows[0].scenario+": "+note)
	}
}

func (r *resultTable) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rows) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-30s %-4s %5s %10s %7s %5s %7s %11s %10s  %s\n",
		"scenario", "dir", "sent", "delivered", "errors", "lost", "window", "duplicated", "dup-window", "(retries / out-of-order)")
	for _, x := range r.rows {
		fmt.Fprintf(&b, "%-30s %-4s %5d %10d %7d %5d %7d %11d %10d  (%d / %d)\n",
			x.scenario, x.dir, x.sent, x.delivered, x.errors, x.lost, x.window, x.dup, x.dupWindow, x.retries, x.outOfOrder)
	}
	for _, n := range r.notes {
		b.WriteString("\n" + n + "\n")
	}
	return b.String()
}
