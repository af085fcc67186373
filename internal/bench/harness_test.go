//go:build bench

package bench_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/xmppgw/xmppgw/internal/proctest"
	"github.com/xmppgw/xmppgw/internal/xmpptest"
)

// proc is a gateway process under test: xmppgw or the baseline.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	log     *proctest.SyncBuffer
	httpURL string
	started time.Time
	exited  chan struct{}
	exitErr error
}

// startProc runs bin with args; httpAddr is where it serves /readyz and the
// webhooks. It is stopped (SIGTERM) when the test ends.
func startProc(t *testing.T, name, httpAddr, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: &proctest.SyncBuffer{}, httpURL: "http://" + httpAddr, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(p.log.String(), 60))
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("%s did not stop within 20 s of SIGTERM", p.name)
	}
}

// waitReady polls /readyz every 2 ms until it answers 200 and returns the
// time from exec.
func (p *proc) waitReady(timeout time.Duration) time.Duration {
	p.t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited (%v) before it was ready:\n%s", p.name, p.exitErr, tail(p.log.String(), 40))
		default:
		}
		resp, err := c.Get(p.httpURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.started)
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready within %v (last: %s)", p.name, timeout, last)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// cpuTime is the user and system (kernel) time a process has used, from
// /proc/<pid>/stat (clock ticks; USER_HZ is 100 on Linux).
func cpuTime(pid int) (user, sys time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, errors.New("unexpected /proc/pid/stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc/pid/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	const userHZ = 100
	return time.Duration(utime) * time.Second / userHZ, time.Duration(stime) * time.Second / userHZ, nil
}

// selfCPU is this process' CPU time: the clients, the load generator and
// the fake Twilio.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memory returns VmRSS and VmHWM (peak RSS) of a process in MB.
func memory(pid int) (rss, peak float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak, nil
}

// prosodyPID reads the pid file xmpptest's Prosody config writes.
func prosodyPID(dir string) int {
	data, err := os.ReadFile(dir + "/prosody.pid")
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// client is one XMPP user. The bench talks to go-xmpp directly rather than
// through xmpptest.Client: it needs the moment each stanza arrives, and
// xmpptest keeps every stanza for predicates to scan, which a flood of
// thousands turns quadratic.
type client struct {
	idx int
	jid string // bare
	xc  *xmpp.Client
	wmu sync.Mutex // go-xmpp writes straight to the socket
	end chan struct{}
	err error
}

// login connects user@domain to the server's c2s port (no TLS, plain auth,
// as xmpptest does) and hands every chat message to onChat.
func login(t *testing.T, c2s, user, domain string, idx int, onChat func(c *client, ch xmpp.Chat, at time.Time)) *client {
	t.Helper()
	opts := xmpp.Options{
		Host:                         c2s,
		User:                         user + "@" + domain,
		Password:                     "password",
		Resource:                     "bench",
		DialTimeout:                  5 * time.Second,
		NoTLS:                        true,
		InsecureAllowUnencryptedAuth: true,
	}
	xc, err := xmpptest.NewClient(opts, 15*time.Second)
	if err != nil {
		t.Fatalf("login %s: %v", opts.User, err)
	}
	c := &client{idx: idx, jid: opts.User, xc: xc, end: make(chan struct{})}
	go func() {
		defer close(c.end)
		for {
			v, err := c.xc.Recv()
			at := time.Now()
			if err != nil {
				c.err = err
				return
			}
			if ch, ok := v.(xmpp.Chat); ok && ch.Type != "roster" {
				onChat(c, ch, at)
			}
		}
	}()
	t.Cleanup(func() {
		c.wmu.Lock()
		_, _ = c.xc.SendOrg("</stream:stream>")
		c.wmu.Unlock()
		select {
		case <-c.end:
		case <-time.After(5 * time.Second):
		}
		_ = c.xc.Close()
	})
	return c
}

// send writes one raw stanza.
func (c *client) send(stanza string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.end:
		return fmt.Errorf("%s: stream closed: %v", c.jid, c.err)
	default:
	}
	_, err := c.xc.SendOrg(stanza)
	return err
}

// poster POSTs signed webhooks over a keep-alive pool, as many at once as
// it has connections.
type poster struct {
	hc *http.Client
}

func newPoster(conns int) *poster {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	return &poster{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// post sends an encoded form with its X-Twilio-Signature and wants a 200.
func (p *poster) post(ctx context.Context, url, form, sig string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %s: %s", resp.Status, strings.TrimSpace(b.String()))
	}
	return nil
}
