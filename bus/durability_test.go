package bus_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
)

// No message is acknowledged before the fsync that covers it (issue #16).
//
// A child process runs the embedded bus with sync_always, the default, and
// publishes messages to the outbound stream and puts to the messages
// bucket the way the gateway does: many in flight together, so that the
// committer groups them into atomic batches. The moment each publish
// returns "stored" it writes a marker naming the message to /dev/null.
// strace follows every thread of the child and records, in the order they
// happen, the writes to the streams' block files (with the bytes written),
// the fsyncs of those files, and the markers. For every message: the write
// that put it in its stream's block file must be followed by an fsync of
// that file, and that fsync must have returned before the marker. A
// power cut after the marker therefore cannot take the message: the
// guarantee the store gives without grouping, kept with it.
//
// It also checks that grouping happened: far fewer fsyncs of the stream
// than messages. (Its checker was itself checked: with sync_always off,
// it reports every one of the 800 acknowledgements.)
func TestAcknowledgedOnlyAfterCoveringFsync(t *testing.T) {
	if os.Getenv(durabilityChildEnv) != "" {
		t.Skip("the child runs TestDurabilityChild")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is needed (deploy/install-deps.sh strace; make test installs it)")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "trace")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strace, "-f", "-y", "-s", "1048576", "-o", out,
		"-e", "trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync",
		os.Args[0], "-test.run", "^TestDurabilityChild$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), durabilityChildEnv+"="+filepath.Join(dir, "data"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := checkTrace(t, f)
	t.Logf("%d messages and %d puts acknowledged; %d fsyncs of XMPPGW_OUT's blocks, %d of KV_xmppgw_messages' blocks",
		r.acks["out"], r.acks["kv"], r.fsyncs["XMPPGW_OUT"], r.fsyncs["KV_xmppgw_messages"])
	if r.acks["out"] != durabilityMessages || r.acks["kv"] != durabilityMessages {
		t.Fatalf("acknowledged %d messages and %d puts, want %d each", r.acks["out"], r.acks["kv"], durabilityMessages)
	}
	// The stream's messages are started together: grouped. The puts come
	// from 8 writers one at a time each, too few to pay for a batch
	// (minAtomic): one fsync each, as without grouping.
	if n := r.fsyncs["XMPPGW_OUT"]; n == 0 || n > durabilityMessages/4 {
		t.Errorf("%d fsyncs of XMPPGW_OUT's blocks for %d messages: not grouped", n, durabilityMessages)
	}
	if n := r.fsyncs["KV_xmppgw_messages"]; n == 0 || n > durabilityMessages {
		t.Errorf("%d fsyncs of KV_xmppgw_messages's blocks for %d puts", n, durabilityMessages)
	}
}

const (
	durabilityChildEnv = "BUS_DURABILITY_CHILD"
	durabilityMessages = 400
	durabilityWriters  = 8
)

// TestDurabilityChild is the child of TestAcknowledgedOnlyAfterCoveringFsync.
func TestDurabilityChild(t *testing.T) {
	dir := os.Getenv(durabilityChildEnv)
	if dir == "" {
		return // run by TestAcknowledgedOnlyAfterCoveringFsync only
	}
	b := openEmbedded(t, bus.Options{DataDir: dir, SyncAlways: true})
	marks, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer marks.Close()
	ctx := t.Context()
	kv, err := b.KeyValue(ctx, bus.BucketMessages)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	per := durabilityMessages / durabilityWriters
	for w := range durabilityWriters {
		wg.Add(2)
		go func() { // like the component's reader: started in order, answered later
			defer wg.Done()
			pending := make([]*bus.Pending, per)
			for i := range per {
				tok := fmt.Sprintf("tok-out-%d-%04d", w, i)
				pending[i] = b.Start(bus.OutSubject("g"), envelope(tok), tok)
			}
			for i, p := range pending {
				if _, err := p.Wait(ctx); err != nil {
					t.Error(err)
					continue
				}
				fmt.Fprintf(marks, "ACK tok-out-%d-%04d\n", w, i)
			}
		}()
		go func() { // like runner workers' records: one at a time each
			defer wg.Done()
			for i := range per {
				tok := fmt.Sprintf("tok-kv-%d-%04d", w, i)
				if _, err := kv.Put(ctx, "rec."+tok, []byte(tok)); err != nil {
					t.Error(err)
					continue
				}
				fmt.Fprintf(marks, "ACK %s\n", tok)
			}
		}()
	}
	wg.Wait()
}

func envelope(body string) *bus.Envelope {
	return &bus.Envelope{Kind: bus.KindMessage, ID: body, Gateway: "g", User: "a@example.com", Contact: "+1555", Message: &bus.Message{Body: body}}
}

// An strace -f -y line: optional pid, the call, its first argument (an fd
// with its path), and the rest; or the end of a call interrupted in the
// output by another thread's.
var (
	traceCall    = regexp.MustCompile(`^(\d+)\s+(\w+)\((\d+)<([^>]*)>(.*)$`)
	traceResumed = regexp.MustCompile(`^(\d+)\s+<\.\.\. (\w+) resumed>.*\)\s+=\s+(-?\d+)`)
	traceResult  = regexp.MustCompile(`\)\s+=\s+(-?\d+)`)
	traceToken   = regexp.MustCompile(`tok-(?:out|kv)-\d+-\d{4}`)
)

type traceReport struct {
	acks   map[string]int // "out", "kv"
	fsyncs map[string]int // per stream
}

// checkTrace reads the trace in order and fails t for any message
// acknowledged before an fsync covering its write had returned.
func checkTrace(t *testing.T, f *os.File) traceReport {
	type call struct {
		name, path, rest string
		entry            int
	}
	rep := traceReport{acks: map[string]int{}, fsyncs: map[string]int{}}
	// written[token]: the block file its write went to, and when that
	// write returned; covered[token]: an fsync of that file began after
	// it and has returned.
	type write struct {
		path string
		done int
	}
	written := map[string]write{}
	covered := map[string]bool{}
	// byPath: the tokens written to a block file and not yet covered.
	byPath := map[string][]string{}
	unfinished := map[string]call{} // per pid
	// fsyncsRunning: per path, the fsyncs begun and not returned, with
	// the tokens written before each began.
	type running struct {
		pid    string
		tokens []string
	}
	fsyncsRunning := map[string][]running{}

	streamOf := func(path string) (string, bool) {
		i := strings.Index(path, "/streams/")
		if i < 0 || !strings.Contains(path, "/msgs/") || strings.Contains(path, "/batches/") {
			return "", false
		}
		s, _, _ := strings.Cut(path[i+len("/streams/"):], "/")
		return s, true
	}
	n := 0
	finish := func(pid string, c call, result string) {
		if result != "0" && !strings.HasPrefix(c.name, "write") && !strings.HasPrefix(c.name, "pwrite") {
			return // a failed fsync covers nothing
		}
		switch {
		case c.name == "fsync" || c.name == "fdatasync":
			list := fsyncsRunning[c.path]
			for i, r := range list {
				if r.pid == pid {
					for _, tok := range r.tokens {
						covered[tok] = true
					}
					fsyncsRunning[c.path] = append(list[:i], list[i+1:]...)
					break
				}
			}
		case c.path == os.DevNull:
			tok := traceToken.FindString(c.rest)
			if tok == "" {
				return
			}
			w, ok := written[tok]
			switch {
			case !ok:
				t.Errorf("%s acknowledged, and no write of it to a stream's block file was seen", tok)
			case !covered[tok]:
				t.Errorf("%s acknowledged (trace line %d) before an fsync of %s covering its write (line %d) had returned", tok, n, w.path, w.done)
			}
			if strings.HasPrefix(tok, "tok-out") {
				rep.acks["out"]++
			} else {
				rep.acks["kv"]++
			}
		default: // a write
			if _, ok := streamOf(c.path); !ok {
				return
			}
			for _, tok := range traceToken.FindAllString(c.rest, -1) {
				if _, seen := written[tok]; !seen {
					written[tok] = write{c.path, n}
					byPath[c.path] = append(byPath[c.path], tok)
				}
			}
		}
	}
	begin := func(pid string, c call) {
		if c.name != "fsync" && c.name != "fdatasync" {
			return
		}
		s, ok := streamOf(c.path)
		if !ok {
			return
		}
		rep.fsyncs[s]++
		// Whatever was written to the file before the fsync began.
		fsyncsRunning[c.path] = append(fsyncsRunning[c.path], running{pid, byPath[c.path]})
		byPath[c.path] = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if m := traceResumed.FindStringSubmatch(line); m != nil {
			pid := m[1]
			if c, ok := unfinished[pid]; ok && c.name == m[2] {
				delete(unfinished, pid)
				finish(pid, c, m[3])
			}
			continue
		}
		m := traceCall.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid := m[1]
		c := call{name: m[2], path: m[4], rest: m[5], entry: n}
		begin(pid, c)
		if strings.HasSuffix(line, "<unfinished ...>") {
			unfinished[pid] = c
			continue
		}
		res := traceResult.FindAllStringSubmatch(line, -1)
		if len(res) == 0 {
			continue
		}
		finish(pid, c, res[len(res)-1][1])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rep
}
