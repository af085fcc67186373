//go:build faults

package faults_test

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
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

// settleTimeout bounds how long a scenario waits, after its fault, for every
// message to be accounted for.
const settleTimeout = 120 * time.Second

// faultScenario is one fault of TestFaults. Every scenario fails on a lost
// or duplicated message, and on a message reported to alice as failed that
// was delivered all the same.
type faultScenario struct {
	name string
	// run builds the world, starts the traffic and injects the fault.
	run func(t *testing.T) *env
	// settle, when set, replaces settleTimeout.
	settle time.Duration
}

var scenarios = []faultScenario{
	{name: "kill -9 mid-run", run: killGateway},
	{name: "Prosody restart", run: restartProsody},
	{name: "Twilio 20% 429 + 5% 500", run: func(t *testing.T) *env { return providerErrors(t, "twilio") }},
	{name: "Twilio answers late", run: func(t *testing.T) *env { return providerLate(t, "twilio") }},
	{name: "external NATS restart", run: restartNATS},
	{name: "data disk full", run: diskFull},
	{name: "data disk read-only", run: diskReadOnly},
	// The same through Telnyx (adapter telnyx, issue 15).
	// A send the kill cut before it reached Telnyx has no webhook to settle
	// it: its sender is told the outcome is unknown telnyx.WebhookWait (2
	// min) after the attempt.
	{name: "Telnyx: kill -9 mid-run", run: func(t *testing.T) *env { return killGatewayOn(t, "telnyx") }, settle: 3 * time.Minute},
	{name: "Telnyx 20% 429 + 5% 500", run: func(t *testing.T) *env { return providerErrors(t, "telnyx") }},
	{name: "Telnyx answers late", run: func(t *testing.T) *env { return providerLate(t, "telnyx") }},
}

// TestFaults runs every scenario in turn (they share two cores: in parallel
// they would measure each other) and logs the table of all of them.
func TestFaults(t *testing.T) {
	began := time.Now()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, sc) })
	}
	t.Logf("all scenarios in %v\n%s", time.Since(began).Round(time.Second), results.String())
}

func runScenario(t *testing.T, sc faultScenario) {
	e := sc.run(t)
	settled := e.settle(cmp.Or(sc.settle, settleTimeout))
	r := e.account()
	r[0].scenario, r[1].scenario = sc.name, sc.name
	note := e.describe(r)
	if !settled {
		note = "NOT SETTLED within the deadline; " + note
	}
	results.add(r, note)
	t.Logf("%s\nevents:\n  %s\nnotes: %s", tableOf(r), strings.Join(e.events, "\n  "), note)

	if crashed, err := e.gw.Crashed(); crashed {
		t.Errorf("xmppgw exited by itself (%v)", err)
	}
	for _, x := range r {
		if x.lost > 0 {
			t.Errorf("%s: %d %s messages lost beyond the socket window: %s", sc.name, x.lost, x.dir, scenario.Short(x.lostIDs))
			series := map[string]scenario.Series{"out": scenario.Out, "in": scenario.In}[x.dir]
			for _, k := range x.lostIDs[:min(len(x.lostIDs), 5)] {
				t.Logf("lost %s: %s", series.ID(k), e.trace(series, k))
			}
		}
		if x.dup > 0 {
			t.Errorf("%s: %d %s duplicates", sc.name, x.dup, x.dir)
		}
		if len(x.misreported) > 0 {
			// A definite error ("send it again later") must mean the
			// message went nowhere: alice would send a duplicate.
			t.Errorf("%s: %d %s messages reported to alice as failed were delivered all the same: %s",
				sc.name, len(x.misreported), x.dir, scenario.Short(x.misreported))
		}
	}
	if dir := os.Getenv("FAULTS_KEEP_LOGS"); dir != "" {
		// The whole log of the gateway, for tracing one message.
		if b, err := os.ReadFile(e.gw.LogPath); err == nil {
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(sc.name, " ", "_")+".log"), b, 0o644)
		}
	}
	if t.Failed() || r[0].dup+r[1].dup+r[0].window+r[1].window > 0 || os.Getenv("FAULTS_LOG") != "" {
		lines := e.gw.LogLines(func(l string) bool {
			return strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "===") ||
				strings.Contains(l, "attempt") || strings.Contains(l, "already accepted")
		})
		t.Logf("xmppgw warnings and errors (repeats folded):\n%s", proctest.FoldLog(lines, 60))
	}
}

func tableOf(r [2]row) string {
	var tb resultTable
	tb.add(r, "")
	return tb.String()
}

// killGateway: kill -9 of xmppgw with both directions in full flow, then a
// new process on the same data directory and HTTP port. The traffic comes
// four times faster than the usual pace, more than the gateway stores with
// an fsync per write, so the kill finds work in flight at every stage.
func killGateway(t *testing.T) *env { return killGatewayOn(t, "twilio") }

// killGatewayOn is killGateway with the sms gateway at provider.
func killGatewayOn(t *testing.T, provider string) *env {
	e := newEnv(t, envOptions{rate: 4 * suite.Rate(), provider: provider})
	e.start()
	q := e.n / 4
	e.waitFor("a quarter of the traffic", time.Minute, func(c counts) bool { return c.outDelivered >= q && c.inReceived >= q })
	c := e.refresh()
	e.tap.MarkAbrupt()
	if err := e.gw.Kill(); err != nil {
		t.Fatal(err)
	}
	e.event("kill -9 xmppgw (out: %d written, %d delivered; in: %d accepted, %d received)", c.outWritten, c.outDelivered, c.inOK, c.inReceived)
	if err := e.gw.Start(); err != nil {
		t.Fatal(err)
	}
	d := e.gw.waitReady(t, 30*time.Second)
	e.event("new xmppgw ready after %v", d.Round(time.Millisecond))
	return e
}

// restartProsody: the XMPP server restarts in the middle of inbound
// traffic. Offline storage is on, as on production servers, so messages for
// alice while she is logged out are kept; she logs in again after the
// restart.
func restartProsody(t *testing.T) *env {
	e := newEnv(t, envOptions{offline: true})
	e.start()
	q := e.n / 4
	e.waitFor("a quarter of the inbound traffic", time.Minute, func(c counts) bool { return c.inReceived >= q && c.outDelivered >= q })
	c := e.refresh()
	began := time.Now()
	e.tap.MarkAbrupt()
	e.srv.Restart(t)
	e.event("Prosody restarted in %v (out: %d written, %d delivered; in: %d accepted, %d received)",
		time.Since(began).Round(time.Millisecond), c.outWritten, c.outDelivered, c.inOK, c.inReceived)
	e.addSession(xmpptest.Login(t, e.srv, "alice", "password"))
	e.event("alice logged in again")
	d := e.gw.waitReady(t, 60*time.Second)
	e.event("component stream up again (readyz after %v)", d.Round(time.Millisecond))
	return e
}

// providerErrors: for a stretch of create calls (two fifths of the
// series' worth) the provider answers 20% 429 and 5% 500, seeded so that
// every run sees the same sequence; then it recovers.
func providerErrors(t *testing.T, provider string) *env {
	e := newEnv(t, envOptions{provider: provider})
	e.start()
	e.waitFor("a fifth of the outbound traffic", time.Minute, func(c counts) bool { return c.outDelivered >= e.n/5 })
	f := flakyProvider(e.prov, 429, e.n*2/5, func(x float64) string {
		switch {
		case x < 0.20:
			return "429"
		case x < 0.25:
			return "500"
		}
		return ""
	})
	e.event("%s starts answering 20%% 429, 5%% 500 for %d create calls", e.prov.name(), e.n*2/5)
	e.waitFor("the faulty stretch", faultyStretch, func(counts) bool { return f.done() })
	e.prov.reset()
	e.event("%s recovered after %s", e.prov.name(), f)
	e.note("%s answered %s", e.prov.name(), f)
	return e
}

// providerLate: with request_timeout 500ms, for a stretch of create calls
// 3% are accepted by the provider but answered after 1 s. The gateway
// cannot know whether they were sent; a plain retry sends them twice.
// Twilio's list of messages settles the doubt; Telnyx's message.sent
// webhook, which names the attempt, does.
func providerLate(t *testing.T, provider string) *env {
	e := newEnv(t, envOptions{timeout: 500 * time.Millisecond, provider: provider})
	e.start()
	e.waitFor("a fifth of the outbound traffic", time.Minute, func(c counts) bool { return c.outDelivered >= e.n/5 })
	f := flakyProvider(e.prov, 500, e.n*2/5, func(x float64) string {
		if x < 0.03 {
			return lateAnswer
		}
		return ""
	})
	e.event("%s starts accepting 3%% of creates but answering after 1 s (request_timeout 500ms), for %d create calls", e.prov.name(), e.n*2/5)
	e.waitFor("the faulty stretch", faultyStretch, func(counts) bool { return f.done() })
	e.prov.reset()
	e.event("%s answers in time again; %s", e.prov.name(), f)
	e.note("%s answered %s", e.prov.name(), f)
	return e
}

// faultyStretch bounds the scripted stretch of create calls. A message
// that failed transiently holds its conversation while it waits for its
// retry (the runner keeps a conversation's order); the series goes to 8
// conversations (scenario.OutboundTo), so the stretch's hundred-odd
// retries, each 0.5–2 s of backoff, wait in 8 lines: about 25 s of the
// 800 calls (one conversation took about 3 minutes).
const faultyStretch = 2 * time.Minute

// lateAnswer is the failure of providerLate: accepted, answered late.
const lateAnswer = "accepted, answered after 1 s"

// flaky scripts the next calls create calls: pick maps a seeded random
// number to a failure ("" answers normally), counted by its name.
type flaky struct {
	mu     sync.Mutex
	rng    *rand.Rand
	left   int
	counts map[string]int
}

func flakyProvider(p provider, seed uint64, calls int, pick func(float64) string) *flaky {
	f := &flaky{rng: rand.New(rand.NewPCG(seed, seed)), left: calls, counts: map[string]int{}}
	p.script(func() string {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.left == 0 {
			return ""
		}
		f.left--
		name := pick(f.rng.Float64())
		if name != "" {
			f.counts[name]++
		}
		return name
	})
	return f
}

func (f *flaky) done() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.left == 0
}

func (f *flaky) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f.counts)) {
		parts = append(parts, fmt.Sprintf("%d × %s", f.counts[k], k))
	}
	if len(parts) == 0 {
		return "no scripted failure"
	}
	return strings.Join(parts, ", ")
}

// restartNATS: the bus is a separate nats-server process, restarted
// (SIGTERM, then started again on the same store) in the middle of the run.
func restartNATS(t *testing.T) *env {
	ns := startNATS(t, t.TempDir())
	e := newEnv(t, envOptions{busURL: "nats://" + ns.addr})
	e.start()
	q := e.n / 4
	e.waitFor("a quarter of the traffic", time.Minute, func(c counts) bool { return c.outDelivered >= q && c.inReceived >= q })
	c := e.refresh()
	d, err := ns.Stop(15 * time.Second)
	if err != nil {
		t.Error(err)
	}
	e.event("nats-server stopped (SIGTERM) in %v (out: %d written, %d delivered; in: %d accepted, %d received)",
		d.Round(time.Millisecond), c.outWritten, c.outDelivered, c.inOK, c.inReceived)
	d = ns.startAndWait(t)
	e.event("nats-server listening again after %v", d.Round(time.Millisecond))
	d = e.gw.waitReady(t, 60*time.Second)
	e.event("xmppgw ready again after %v", d.Round(time.Millisecond))
	return e
}

// diskFull: bus.data_dir on a small tmpfs, filled mid-run (the gateway must
// refuse new work, with errors to XMPP senders and non-2xx to webhooks, not
// lose it), then freed (it must recover). When it does not recover by
// itself, it is restarted, to tell "stuck until restart" from "lost".
func diskFull(t *testing.T) *env {
	mnt := mountTmpfs(t, "64m")
	e := newEnv(t, envOptions{dataDir: filepath.Join(mnt, "data")})
	e.start()
	e.waitFor("a fifth of the traffic written, and some of it through", time.Minute, e.midTraffic)
	var filler string
	e.diskPhase("data disk full", func() error {
		var size int64
		var err error
		filler, size, err = fillDisk(mnt)
		if err == nil {
			e.event("filler of %d MiB, %d bytes left", size>>20, freeSpace(mnt))
		}
		return err
	}, func() error { return os.Remove(filler) })
	return e
}

// diskReadOnly: bus.data_dir on an ext4 filesystem that turns read-only
// mid-run. `mount -o remount,ro` is tried first; Linux refuses it while the
// store holds files open for writing, so the fault is what makes disks
// read-only in production: a filesystem error with errors=remount-ro
// (injected through ext4's trigger_fs_error). The kernel then refuses
// remount,rw too; the way back is the operator's: stop the gateway, unmount,
// fsck, mount, start it again.
func diskReadOnly(t *testing.T) *env {
	img, mnt := mountExt4(t, "256M")
	e := newEnv(t, envOptions{dataDir: filepath.Join(mnt, "data")})
	e.start()
	e.waitFor("a fifth of the traffic written, and some of it through", time.Minute, e.midTraffic)
	if _, err := remount(mnt, "ro", time.Second); err != nil {
		e.event("mount -o remount,ro refused: %v", err)
		e.note("`mount -o remount,ro` is refused while the gateway runs (open files); the read-only fault is an ext4 error with errors=remount-ro")
	} else if _, err := remount(mnt, "rw", 5*time.Second); err != nil {
		t.Fatalf("read-only by remount, and back: %v", err)
	}
	e.diskPhase("data disk read-only (ext4 error)", func() error { return ext4Error(mnt) }, func() error {
		_, err := remount(mnt, "rw", time.Second)
		if err == nil {
			return nil
		}
		e.event("mount -o remount,rw refused after the error: %v", err)
		d, err := e.gw.Stop(15 * time.Second)
		e.event("xmppgw stopped (SIGTERM) in %v (err %v); unmount, fsck, mount", d.Round(time.Millisecond), err)
		if err := remountExt4(img, mnt); err != nil {
			return err
		}
		if err := e.gw.Start(); err != nil {
			return err
		}
		d, err = e.gw.ready(60 * time.Second)
		e.event("xmppgw started again, ready after %v (%v)", d.Round(time.Millisecond), err)
		return err
	})
	return e
}

// midTraffic says when a disk fault may be injected: a fifth of each series
// written (the generators are paced, so four fifths are still to come and
// run into the fault: diskPhase wants new work refused), and a twentieth
// through, so the gateway is known to be moving traffic. Counting only
// deliveries would be wrong when the gateway is slower than the
// generators (one conversation, sent one at a time): by the time a fifth
// is delivered, every message may already be written and stored, and
// nothing new would meet the fault (seen 2026-12-05: 0 error stanzas).
func (e *env) midTraffic(c counts) bool {
	q := e.n / 5
	return c.outWritten >= q && c.inOK >= q && c.outDelivered >= q/4 && c.inReceived >= q/4
}

// diskPhase injects a storage fault, checks that new work is refused rather
// than swallowed, undoes the fault and checks that messages flow again
// within 30 s; if they do not, it restarts the gateway (SIGTERM, same data)
// and checks again.
func (e *env) diskPhase(what string, fault, undo func() error) {
	t := e.t
	before := e.refresh()
	if err := fault(); err != nil {
		t.Errorf("%s: could not inject: %v", what, err)
		return
	}
	e.event("%s (out: %d written, %d delivered, %d errors; in: %d accepted, %d received, %d refused)",
		what, before.outWritten, before.outDelivered, before.outErrors, before.inOK, before.inReceived, before.inRefused)
	// Refusals are the expected answer to new work: wait for both kinds,
	// then let a second more of traffic run into the fault.
	refused := proctest.Poll(10*time.Second, 50*time.Millisecond, func() bool {
		c := e.refresh()
		return c.outErrors >= before.outErrors+10 && c.inRefused >= before.inRefused+3
	})
	held := e.refresh()
	proctest.Poll(5*time.Second, 50*time.Millisecond, func() bool { return e.refresh().outWritten >= held.outWritten+int(e.rate) })
	during := e.refresh()
	code, body, _ := e.gw.get("/readyz")
	e.event("%s: %d outbound refused with errors, %d webhooks refused, %d delivered / %d received meanwhile; /readyz %d %s",
		what, during.outErrors-before.outErrors, during.inRefused-before.inRefused,
		during.outDelivered-before.outDelivered, during.inReceived-before.inReceived, code, strings.TrimSpace(body))
	if !refused {
		t.Errorf("%s: new work was not refused promptly (want ≥10 error stanzas and ≥3 webhook refusals within 10 s; got %d and %d)",
			what, during.outErrors-before.outErrors, during.inRefused-before.inRefused)
		e.note("%s: new work was not refused promptly", what)
	}
	if err := undo(); err != nil {
		t.Errorf("%s: undo: %v", what, err)
		return
	}
	e.event("%s: undone", what)
	if e.flowing(what+": after undoing", 30*time.Second) {
		return
	}
	t.Errorf("%s: the gateway did not recover within 30 s of undoing the fault", what)
	e.note("%s: NO RECOVERY within 30 s of undoing the fault", what)
	d, err := e.gw.Stop(15 * time.Second)
	e.event("%s: xmppgw stopped (SIGTERM) in %v, err %v; starting it again on the same data", what, d.Round(time.Millisecond), err)
	if err := e.gw.Start(); err != nil {
		t.Fatal(err)
	}
	d, err = e.gw.ready(60 * time.Second)
	if err != nil {
		t.Errorf("%s: restart: %v", what, err)
		return
	}
	e.event("%s: new xmppgw ready after %v", what, d.Round(time.Millisecond))
	if e.flowing(what+": after the restart", 30*time.Second) {
		e.note("%s: recovered only after a restart", what)
	}
}

// flowing sends a probe each way and reports whether both got through.
func (e *env) flowing(what string, timeout time.Duration) bool {
	began := time.Now()
	out, in := e.probe(timeout)
	if out && in {
		e.event("%s: messages flow (a fresh message each way through in %v)", what, time.Since(began).Round(time.Millisecond))
		return true
	}
	e.event("%s: NO FLOW within %v (outbound probe through: %v, inbound probe through: %v)", what, timeout, out, in)
	return false
}
