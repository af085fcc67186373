//go:build bench

package bench_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/twiliotest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

const (
	domain     = "localhost"
	smsDomain  = "sms.localhost"
	secret     = "secret"
	accountSID = "AC00000000000000000000000000000000"
	authToken  = "0123456789abcdef0123456789abcdef"
	// filler makes bodies the length of an ordinary SMS (about 80 bytes).
	filler = " - a benchmark message about as long as an ordinary SMS."
)

var (
	flagMsgs        = flag.Int("msgs", 10000, "messages in each flood (each direction)")
	flagClients     = flag.Int("clients", 8, "XMPP clients (users), each with its own number")
	flagContacts    = flag.Int("contacts", 64, "SMS contacts the messages are spread over")
	flagPosters     = flag.Int("posters", 8, "concurrent webhook posters in the inbound flood")
	flagRate        = flag.Float64("rate", 400, "paced rate, messages per second (each direction in turn)")
	flagPaced       = flag.Duration("paced", 5*time.Second, "length of each paced run")
	flagWarmup      = flag.Int("warmup", 200, "messages each way before measuring")
	flagConcurrency = flag.Int("concurrency", 8, "create calls in flight: xmppgw's max_concurrency and the baseline's workers")
	flagSystems     = flag.String("systems", "baseline,xmppgw,xmppgw-nosync", "gateways to run, in order: baseline, xmppgw (bus.sync_always: true, the default), xmppgw-nosync (false)")
	flagPhases      = flag.String("phases", "out,in,paced", "what to measure after start-up: out (outbound flood), in (inbound flood), paced (both directions at -rate)")
	flagRounds      = flag.Int("rounds", 1, "run the systems this many times, interleaved, and report the median of each figure")
	flagProfile     = flag.String("gwprofile", "", "directory: each xmppgw process writes a CPU profile of its whole run there, <system>.pprof (CPUPROFILE)")
)

var xmppgwBin, baselineBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "xmppgw-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xmppgwBin = filepath.Join(dir, "xmppgw")
	baselineBin = filepath.Join(dir, "baseline")
	// Without -race, as shipped: the numbers are the product's.
	for _, b := range []struct{ out, pkg string }{
		{xmppgwBin, "github.com/xmppgw/xmppgw/cmd/xmppgw"},
		{baselineBin, "github.com/xmppgw/xmppgw/internal/bench/baseline"},
	} {
		build := exec.Command("go", "build", "-tags", proctest.BuildTags, "-o", b.out, b.pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// measured is one load phase.
type measured struct {
	n        int
	rate     float64       // messages per second, first send to last arrival
	p50, p99 time.Duration // send (or due time, paced) to arrival
	cpu      time.Duration // gateway CPU per message
	cpuSys   time.Duration // of which in the kernel (syscalls: fsync, sockets)
	prosody  time.Duration // Prosody CPU per message
	harness  time.Duration // this process' CPU per message (clients, generator, fake Twilio)
}

// result is one system's run.
type result struct {
	ready                      time.Duration
	idleCPU                    float64 // share of one core used while idle
	rssIdle, rssAfter, rssPeak float64
	outFlood, inFlood          *measured
	outPaced, inPaced          *measured
	outWrites, inWrites        *traced // store writes and syncs per message
}

func TestBench(t *testing.T) {
	phases := map[string]bool{}
	for _, p := range strings.Split(*flagPhases, ",") {
		phases[strings.TrimSpace(p)] = true
	}
	var names []string
	for _, name := range strings.Split(*flagSystems, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "baseline", "xmppgw", "xmppgw-nosync":
		default:
			t.Fatalf("unknown system %q (baseline, xmppgw, xmppgw-nosync)", name)
		}
		names = append(names, name)
	}
	// Rounds interleave the systems so that a slow spell of a shared
	// machine does not land on one of them only.
	results := map[string][]*result{}
	for round := range *flagRounds {
		for _, name := range names {
			sub := name
			if *flagRounds > 1 {
				sub = fmt.Sprintf("%s/round%d", name, round+1)
			}
			t.Run(sub, func(t *testing.T) {
				results[name] = append(results[name], runSystem(t, name, phases))
			})
		}
	}
	fmt.Print("\n" + renderTable(names, results))
}

// rig is one system under load: Prosody, the fake Twilio, the gateway and
// the clients, and the bookkeeping of every message.
type rig struct {
	t        *testing.T
	name     string
	srv      *xmpptest.Server
	tw       *twiliotest.Server
	gw       *proc
	hook     string // inbound webhook URL
	dataDir  string // the gateway's bus.data_dir; "" for the baseline
	clients  []*client
	numbers  []string // client i's number
	contacts []string

	mu       sync.RWMutex
	phases   map[string]*phase
	problems []string
	nProblem atomic.Int64
}

// phase tracks the messages of one load phase: body "<tag> <i> …", stanza
// id or MessageSid unique, client i%clients, contact i%contacts.
type phase struct {
	tag       string
	out       bool // XMPP → SMS
	n         int
	sent      []atomic.Int64 // unix ns: sent (flood) or due (paced)
	got       []atomic.Int64 // unix ns of the first arrival
	arrived   atomic.Int64
	dups      atomic.Int64
	misrouted atomic.Int64
	done      chan struct{}
}

func (r *rig) newPhase(tag string, out bool, n int) *phase {
	ph := &phase{tag: tag, out: out, n: n, sent: make([]atomic.Int64, n), got: make([]atomic.Int64, n), done: make(chan struct{})}
	if n == 0 {
		close(ph.done)
	}
	r.mu.Lock()
	r.phases[tag] = ph
	r.mu.Unlock()
	return ph
}

func (r *rig) problem(format string, args ...any) {
	if r.nProblem.Add(1) > 20 {
		return
	}
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *rig) problemList() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.problems)
}

// arrive records a message seen at its destination: at the fake Twilio
// (client -1) or at an XMPP client from the contact address from.
func (r *rig) arrive(body string, client int, from string, at time.Time) {
	tag, rest, _ := strings.Cut(body, " ")
	num, _, _ := strings.Cut(rest, " ")
	r.mu.RLock()
	ph := r.phases[tag]
	r.mu.RUnlock()
	i, err := strconv.Atoi(num)
	if ph == nil || err != nil || i < 0 || i >= ph.n {
		r.problem("stray message %q (client %d)", body, client)
		return
	}
	if client >= 0 {
		bare, _, _ := strings.Cut(from, "/")
		if ph.out || client != i%len(r.clients) || bare != r.contacts[i%len(r.contacts)]+"@"+smsDomain {
			ph.misrouted.Add(1)
			r.problem("%s %d arrived at client %d from %s", tag, i, client, from)
			return
		}
	}
	if !ph.got[i].CompareAndSwap(0, at.UnixNano()) {
		ph.dups.Add(1)
		r.problem("%s %d arrived twice", tag, i)
		return
	}
	if ph.arrived.Add(1) == int64(ph.n) {
		close(ph.done)
	}
}

func (r *rig) outStanza(ph *phase, i int) string {
	return fmt.Sprintf(`<message to='%s@%s' type='chat' id='%s-%d'><body>%s %d%s</body></message>`,
		r.contacts[i%len(r.contacts)], smsDomain, ph.tag, i, ph.tag, i, filler)
}

// webhook is one prepared inbound POST.
type webhook struct{ form, sig string }

func (r *rig) inWebhook(ph *phase, i int) webhook {
	body := ph.tag + " " + strconv.Itoa(i) + filler
	p := r.tw.InboundSMS(r.contacts[i%len(r.contacts)], r.numbers[i%len(r.clients)], body)
	return webhook{form: p.Encode(), sig: twiliotest.Sign(authToken, r.hook, p)}
}

func runSystem(t *testing.T, name string, phases map[string]bool) *result {
	n := *flagClients
	users := map[string]string{}
	r := &rig{t: t, name: name, phases: map[string]*phase{}}
	for i := range n {
		users[fmt.Sprintf("u%d", i)] = "password"
		r.numbers = append(r.numbers, fmt.Sprintf("+1555000%04d", i))
	}
	for j := range *flagContacts {
		r.contacts = append(r.contacts, fmt.Sprintf("+1555123%04d", j))
	}
	r.srv = xmpptest.StartProsody(t, xmpptest.Options{Components: map[string]string{smsDomain: secret}, Users: users})
	r.tw = twiliotest.Start(t, accountSID, authToken)
	r.tw.SetResponder(func(req twiliotest.CreateRequest) *twiliotest.Failure {
		r.arrive(req.Body, -1, "", time.Now())
		return nil
	})

	res := &result{}
	httpAddr := proctest.FreeAddr(t)
	r.hook = "http://" + httpAddr + "/twilio/sms/sms"
	r.gw = startGateway(t, name, httpAddr, r)
	res.ready = r.gw.waitReady(60 * time.Second)

	for i := range n {
		r.clients = append(r.clients, login(t, r.srv.C2SAddr(), fmt.Sprintf("u%d", i), domain, i, r.onChat))
	}
	var err error
	if res.rssIdle, _, err = memory(r.gw.pid()); err != nil {
		t.Fatal(err)
	}

	// Background work (timers, heartbeats, pull requests) while idle.
	before := r.usage()
	time.Sleep(idleWindow)
	res.idleCPU = float64(r.usage().gw-before.gw) / float64(idleWindow)

	// Warm up: connections opened, consumers created, caches filled.
	r.runOutFlood(r.newPhase("wo", true, *flagWarmup))
	r.runInFlood(r.newPhase("wi", false, *flagWarmup))

	// Paced first, on a system that has seen no flood; then the floods.
	if phases["paced"] {
		k := int(*flagRate * flagPaced.Seconds())
		res.outPaced = r.runOutPaced(r.newPhase("op", true, k))
		res.inPaced = r.runInPaced(r.newPhase("ip", false, k))
	}
	if phases["out"] {
		res.outFlood = r.runOutFlood(r.newPhase("of", true, *flagMsgs))
	}
	if phases["in"] {
		res.inFlood = r.runInFlood(r.newPhase("if", false, *flagMsgs))
	}
	if res.rssAfter, res.rssPeak, err = memory(r.gw.pid()); err != nil {
		t.Fatal(err)
	}
	if k := *flagWrites; k > 0 {
		if res.outWrites, err = r.traceWrites(k, func() { r.runOutFlood(r.newPhase("so", true, k)) }); err != nil {
			t.Fatal(err)
		}
		if res.inWrites, err = r.traceWrites(k, func() { r.runInFlood(r.newPhase("si", false, k)) }); err != nil {
			t.Fatal(err)
		}
	}
	r.verify()
	return res
}

func startGateway(t *testing.T, name, httpAddr string, r *rig) *proc {
	var assign []string
	for i, num := range r.numbers {
		assign = append(assign, fmt.Sprintf("%s=u%d@%s", num, i, domain))
	}
	if name == "baseline" {
		return startProc(t, name, httpAddr, baselineBin, nil,
			"-component", r.srv.ComponentAddr(), "-domain", smsDomain, "-secret", secret,
			"-listen", httpAddr, "-api-url", r.tw.URL, "-account-sid", accountSID, "-auth-token", authToken,
			"-concurrency", strconv.Itoa(*flagConcurrency), "-numbers", strings.Join(assign, ","))
	}
	var numbers strings.Builder
	for i, num := range r.numbers {
		fmt.Fprintf(&numbers, "        %q: u%d@%s\n", num, i, domain)
	}
	dir := t.TempDir()
	r.dataDir = filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`xmpp:
  server: %s
bus:
  data_dir: %s
  sync_always: %v
http:
  listen: %s
  public_url: http://%s
gateways:
  sms:
    domain: %s
    secret: %s
    adapter: twilio
    allowed_domains: [%s]
    max_concurrency: %d
    quota:
      messages: 0
    twilio:
      account_sid: %s
      auth_token: %s
      api_url: %s
      default_region: US
      mps: 1000000
      numbers:
%s`, r.srv.ComponentAddr(), filepath.Join(dir, "data"), name == "xmppgw", httpAddr, httpAddr,
		smsDomain, secret, domain, *flagConcurrency, accountSID, authToken, r.tw.URL, numbers.String())
	file := filepath.Join(dir, "xmppgw.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	if *flagProfile != "" {
		if err := os.MkdirAll(*flagProfile, 0o755); err != nil {
			t.Fatal(err)
		}
		env = append(env, "CPUPROFILE="+filepath.Join(*flagProfile, name+".pprof"))
	}
	return startProc(t, name, httpAddr, xmppgwBin, env, "run", "-c", file)
}

func (r *rig) onChat(c *client, ch xmpp.Chat, at time.Time) {
	switch {
	case ch.Type == "error":
		r.problem("client %d got an error message from %s: %q %v", c.idx, ch.Remote, ch.Text, ch.Other)
	case ch.Text != "":
		r.arrive(ch.Text, c.idx, ch.Remote, at)
	}
}

// usage samples the CPU time of the gateway, Prosody and this process.
type usage struct{ gw, gwSys, prosody, self time.Duration }

func (r *rig) usage() usage {
	user, sys, err := cpuTime(r.gw.pid())
	if err != nil {
		r.t.Fatalf("gateway CPU time: %v", err)
	}
	var pr time.Duration
	if pid := prosodyPID(r.srv.Dir()); pid != 0 {
		pu, ps, _ := cpuTime(pid)
		pr = pu + ps
	}
	return usage{gw: user + sys, gwSys: sys, prosody: pr, self: selfCPU()}
}

// settle lets work that follows the last arrival (acks, bookkeeping) finish
// before CPU time is read, so it is charged to the phase that caused it.
const settle = 300 * time.Millisecond

// idleWindow is how long idle CPU use is measured (10 ms clock ticks).
const idleWindow = 2 * time.Second

func (r *rig) runOutFlood(ph *phase) *measured {
	stanzas := make([]string, ph.n)
	for i := range stanzas {
		stanzas[i] = r.outStanza(ph, i)
	}
	before := r.usage()
	var wg sync.WaitGroup
	for _, c := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c.idx; i < ph.n; i += len(r.clients) {
				ph.sent[i].Store(time.Now().UnixNano())
				if err := c.send(stanzas[i]); err != nil {
					r.problem("send %s %d: %v", ph.tag, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return r.finish(ph, before)
}

func (r *rig) runInFlood(ph *phase) *measured {
	hooks := make([]webhook, ph.n)
	for i := range hooks {
		hooks[i] = r.inWebhook(ph, i)
	}
	p := newPoster(*flagPosters)
	before := r.usage()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range *flagPosters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < ph.n; i = int(next.Add(1) - 1) {
				ph.sent[i].Store(time.Now().UnixNano())
				if err := p.post(context.Background(), r.hook, hooks[i].form, hooks[i].sig); err != nil {
					r.problem("webhook %s %d: %v", ph.tag, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return r.finish(ph, before)
}

// paced calls send(i) at t0 + i/rate. Latency counts from that due time, so
// a generator or gateway falling behind shows as latency rather than as a
// lower rate (no coordinated omission).
func paced(ph *phase, send func(i int)) {
	interval := time.Duration(float64(time.Second) / *flagRate)
	t0 := time.Now().Add(10 * time.Millisecond)
	for i := range ph.n {
		due := t0.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		ph.sent[i].Store(due.UnixNano())
		send(i)
	}
}

func (r *rig) runOutPaced(ph *phase) *measured {
	stanzas := make([]string, ph.n)
	for i := range stanzas {
		stanzas[i] = r.outStanza(ph, i)
	}
	before := r.usage()
	paced(ph, func(i int) {
		if err := r.clients[i%len(r.clients)].send(stanzas[i]); err != nil {
			r.problem("send %s %d: %v", ph.tag, i, err)
		}
	})
	return r.finish(ph, before)
}

func (r *rig) runInPaced(ph *phase) *measured {
	hooks := make([]webhook, ph.n)
	for i := range hooks {
		hooks[i] = r.inWebhook(ph, i)
	}
	p := newPoster(32)
	before := r.usage()
	var wg sync.WaitGroup
	paced(ph, func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.post(context.Background(), r.hook, hooks[i].form, hooks[i].sig); err != nil {
				r.problem("webhook %s %d: %v", ph.tag, i, err)
			}
		}()
	})
	wg.Wait()
	return r.finish(ph, before)
}

// finish waits for every message of ph and computes its figures. Nothing
// may be missing: a lost message fails the run.
func (r *rig) finish(ph *phase, before usage) *measured {
	timeout := 30*time.Second + time.Duration(ph.n)*4*time.Millisecond
	select {
	case <-ph.done:
	case <-time.After(timeout):
		var missing []string
		for i := range ph.n {
			if ph.got[i].Load() == 0 && len(missing) < 10 {
				missing = append(missing, strconv.Itoa(i))
			}
		}
		r.t.Fatalf("%s: %d of %d %s messages arrived within %v (missing e.g. %s); problems: %q",
			r.name, ph.arrived.Load(), ph.n, ph.tag, timeout, strings.Join(missing, ","), r.problemList())
	}
	time.Sleep(settle)
	after := r.usage()
	if ps := r.problemList(); len(ps) > 0 {
		r.t.Fatalf("%s: %s: %d problems, e.g. %q", r.name, ph.tag, r.nProblem.Load(), ps)
	}
	m := &measured{n: ph.n}
	if ph.n == 0 {
		return m
	}
	first, last := int64(1<<63-1), int64(0)
	lat := make([]time.Duration, ph.n)
	for i := range ph.n {
		s, g := ph.sent[i].Load(), ph.got[i].Load()
		first, last = min(first, s), max(last, g)
		lat[i] = time.Duration(g - s)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	m.p50, m.p99 = pct(0.50), pct(0.99)
	m.rate = float64(ph.n) / time.Duration(last-first).Seconds()
	per := func(d time.Duration) time.Duration { return d / time.Duration(ph.n) }
	m.cpu = per(after.gw - before.gw)
	m.cpuSys = per(after.gwSys - before.gwSys)
	m.prosody = per(after.prosody - before.prosody)
	m.harness = per(after.self - before.self)
	r.t.Logf("%s %s: %d msgs, %.0f msg/s, p50 %v p99 %v max %v, gateway CPU %v/msg", r.name, ph.tag, ph.n, m.rate,
		m.p50.Round(time.Microsecond), m.p99.Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), m.cpu)
	return m
}

// verify checks, after the last phase, that every message arrived exactly
// once, and outbound ones with the right From and To: the fake Twilio's own
// record is compared with what was sent.
func (r *rig) verify() {
	time.Sleep(500 * time.Millisecond) // a late duplicate would show by now
	r.mu.RLock()
	phases := maps.Clone(r.phases)
	r.mu.RUnlock()
	count := map[string]int{}
	wantOut := 0
	for _, ph := range phases {
		if ph.arrived.Load() != int64(ph.n) || ph.dups.Load() != 0 || ph.misrouted.Load() != 0 {
			r.t.Errorf("%s: %s: %d of %d arrived, %d duplicates, %d misrouted", r.name, ph.tag, ph.arrived.Load(), ph.n, ph.dups.Load(), ph.misrouted.Load())
		}
		if ph.out {
			wantOut += ph.n
		}
	}
	msgs := r.tw.Messages()
	for _, m := range msgs {
		tag, rest, _ := strings.Cut(m.Body, " ")
		num, _, _ := strings.Cut(rest, " ")
		i, err := strconv.Atoi(num)
		ph := phases[tag]
		if ph == nil || !ph.out || err != nil || i < 0 || i >= ph.n {
			r.t.Errorf("%s: Twilio has an unexpected message %+v", r.name, m)
			continue
		}
		if m.From != r.numbers[i%len(r.clients)] || m.To != r.contacts[i%len(r.contacts)] {
			r.t.Errorf("%s: %s %d sent from %s to %s, want %s to %s", r.name, tag, i, m.From, m.To, r.numbers[i%len(r.clients)], r.contacts[i%len(r.contacts)])
		}
		count[m.Body]++
	}
	for body, c := range count {
		if c != 1 {
			r.t.Errorf("%s: Twilio has %q %d times", r.name, body, c)
		}
	}
	if len(msgs) != wantOut {
		r.t.Errorf("%s: Twilio accepted %d messages, %d were sent", r.name, len(msgs), wantOut)
	}
	if ps := r.problemList(); len(ps) > 0 {
		r.t.Errorf("%s: %d problems, e.g. %q", r.name, r.nProblem.Load(), ps)
	}
	if r.t.Failed() {
		r.t.FailNow()
	}
	r.t.Logf("%s: verified: %d outbound and %d inbound messages, each delivered exactly once", r.name, wantOut, totalIn(phases))
}

func totalIn(phases map[string]*phase) int {
	n := 0
	for _, ph := range phases {
		if !ph.out {
			n += ph.n
		}
	}
	return n
}
