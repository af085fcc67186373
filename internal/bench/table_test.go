//go:build bench

package bench_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// target is a goal from issue #6: relative to the baseline measured in the
// same run, or absolute.
type target struct {
	kind   int // 0 none, else one of the below
	v      float64
	legend string
}

const (
	atLeastBase = iota + 1 // value ≥ v × baseline
	atMostBase             // value ≤ v × baseline
	atMost                 // value ≤ v
)

func (tg target) check(v, base float64, haveBase bool) string {
	switch {
	case tg.kind == 0:
		return ""
	case tg.kind == atLeastBase && haveBase:
		return verdict(v >= tg.v*base)
	case tg.kind == atMostBase && haveBase:
		return verdict(v <= tg.v*base)
	case tg.kind == atMost:
		return verdict(v <= tg.v)
	}
	return "?"
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

type row struct {
	label  string
	format string
	value  func(*result) (float64, bool)
	target target
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// from picks a figure of a phase that may not have run.
func from[T any](ph func(*result) *T, f func(*T) float64) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) {
		m := ph(r)
		if m == nil {
			return 0, false
		}
		return f(m), true
	}
}

var (
	outWrites = func(r *result) *traced { return r.outWrites }
	inWrites  = func(r *result) *traced { return r.inWrites }
	writes    = func(t *traced) float64 { return t.writes }
	syncs     = func(t *traced) float64 { return t.syncs }
)

func always(f func(*result) float64) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) { return f(r), true }
}

var (
	outFlood = func(r *result) *measured { return r.outFlood }
	inFlood  = func(r *result) *measured { return r.inFlood }
	outPaced = func(r *result) *measured { return r.outPaced }
	inPaced  = func(r *result) *measured { return r.inPaced }
	rate     = func(m *measured) float64 { return m.rate }
	p50      = func(m *measured) float64 { return ms(m.p50) }
	p99      = func(m *measured) float64 { return ms(m.p99) }
	cpu      = func(m *measured) float64 { return ms(m.cpu) }
	cpuSys   = func(m *measured) float64 { return ms(m.cpuSys) }
	prosody  = func(m *measured) float64 { return ms(m.prosody) }
	harness  = func(m *measured) float64 { return ms(m.harness) }
)

func rows() []row {
	paced := fmt.Sprintf("%.0f/s", *flagRate)
	return []row{
		{"outbound flood, msg/s", "%.0f", from(outFlood, rate), target{atLeastBase, 0.9, "≥ 0.9 × baseline"}},
		{"inbound flood, msg/s", "%.0f", from(inFlood, rate), target{atLeastBase, 0.9, "≥ 0.9 × baseline"}},
		{"outbound flood p50, ms", "%.2f", from(outFlood, p50), target{}},
		{"outbound flood p99, ms", "%.2f", from(outFlood, p99), target{}},
		{"inbound flood p50, ms", "%.2f", from(inFlood, p50), target{}},
		{"inbound flood p99, ms", "%.2f", from(inFlood, p99), target{}},
		{"outbound paced " + paced + " p50, ms", "%.2f", from(outPaced, p50), target{}},
		{"outbound paced " + paced + " p99, ms", "%.2f", from(outPaced, p99), target{atMostBase, 1.2, "≤ 1.2 × baseline"}},
		{"inbound paced " + paced + " p50, ms", "%.2f", from(inPaced, p50), target{}},
		{"inbound paced " + paced + " p99, ms", "%.2f", from(inPaced, p99), target{atMostBase, 1.2, "≤ 1.2 × baseline"}},
		{"gateway CPU per outbound msg, ms", "%.3f", from(outFlood, cpu), target{atMost, 0.25, "≤ 0.25 ms"}},
		{"  of which kernel, ms", "%.3f", from(outFlood, cpuSys), target{}},
		{"gateway CPU per inbound msg, ms", "%.3f", from(inFlood, cpu), target{}},
		{"  of which kernel, ms", "%.3f", from(inFlood, cpuSys), target{}},
		{"gateway CPU per outbound msg at " + paced + ", ms", "%.3f", from(outPaced, cpu), target{}},
		{"gateway CPU per inbound msg at " + paced + ", ms", "%.3f", from(inPaced, cpu), target{}},
		{"gateway CPU while idle, % of a core", "%.1f", always(func(r *result) float64 { return 100 * r.idleCPU }), target{}},
		{"RSS idle, MB", "%.1f", always(func(r *result) float64 { return r.rssIdle }), target{atMost, 40, "≤ 40 MB"}},
		{"RSS after the floods, MB", "%.1f", always(func(r *result) float64 { return r.rssAfter }), target{}},
		{"peak RSS (VmHWM), MB", "%.1f", always(func(r *result) float64 { return r.rssPeak }), target{}},
		{"start to ready, ms", "%.0f", always(func(r *result) float64 { return ms(r.ready) }), target{atMost, 1000, "≤ 1000 ms"}},
		{"store writes per outbound msg", "%.2f", from(outWrites, writes), target{}},
		{"store fsyncs per outbound msg", "%.2f", from(outWrites, syncs), target{}},
		{"store writes per inbound msg", "%.2f", from(inWrites, writes), target{}},
		{"store fsyncs per inbound msg", "%.2f", from(inWrites, syncs), target{}},
		{"(Prosody CPU per outbound msg, ms)", "%.3f", from(outFlood, prosody), target{}},
		{"(Prosody CPU per inbound msg, ms)", "%.3f", from(inFlood, prosody), target{}},
		{"(harness CPU per outbound msg, ms)", "%.3f", from(outFlood, harness), target{}},
		{"(harness CPU per inbound msg, ms)", "%.3f", from(inFlood, harness), target{}},
	}
}

// median of a figure over rounds; false if the figure was not measured.
func median(rs []*result, value func(*result) (float64, bool)) (float64, bool) {
	var vs []float64
	for _, r := range rs {
		if v, ok := value(r); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// renderTable prints one line per figure: the baseline, then each xmppgw
// configuration with its ratio to the baseline and the verdict.
func renderTable(names []string, results map[string][]*result) string {
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "xmppgw vs thin baseline: %d clients, %d contacts, %d msgs per flood (%d webhook posters), paced %.0f msg/s for %v, %d create calls in flight\n",
		*flagClients, *flagContacts, *flagMsgs, *flagPosters, *flagRate, *flagPaced, *flagConcurrency)
	if *flagRounds > 1 {
		fmt.Fprintf(&b, "median of %d interleaved rounds\n", *flagRounds)
	}
	fmt.Fprintf(&b, "%d CPUs, %s, load average at the end %s", runtime.NumCPU(), runtime.Version(), load)
	fmt.Fprintf(&b, "xmppgw = bus.sync_always true (the default, fsync per write); xmppgw-nosync = false\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := fmt.Sprintf("%-42s", "figure") + "\t"
	for _, n := range names {
		if len(results[n]) == 0 {
			continue
		}
		header += n + "\t"
		if n != "baseline" {
			header += "×base\t\t"
		}
	}
	fmt.Fprintln(w, header+"target\t")
	for _, rw := range rows() {
		line := fmt.Sprintf("%-42s", rw.label) + "\t"
		bv, bok := median(results["baseline"], rw.value)
		for _, n := range names {
			if len(results[n]) == 0 {
				continue
			}
			v, vok := median(results[n], rw.value)
			if !vok {
				line += "-\t"
				if n != "baseline" {
					line += "\t\t"
				}
				continue
			}
			line += fmt.Sprintf(rw.format, v) + "\t"
			if n == "baseline" {
				continue
			}
			ratio := ""
			if bok && bv != 0 {
				ratio = fmt.Sprintf("%.2f", v/bv)
			}
			line += ratio + "\t" + rw.target.check(v, bv, bok) + "\t"
		}
		fmt.Fprintln(w, line+rw.target.legend+"\t")
	}
	w.Flush()
	return b.String()
}
