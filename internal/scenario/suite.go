package scenario

import (
	"flag"
	"testing"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// Suite is what a suite's TestMain prepares: the binaries its scenarios
// run and the flags (given after -args) that size their traffic.
type Suite struct {
	// Binary is xmppgw and NATSBinary a stand-alone nats-server, both
	// built by Main before the tests run (see proctest.Build).
	Binary, NATSBinary string

	prefix string
	n      *int
	rate   *float64
}

// NewSuite defines the flags -n (messages per direction in each scenario)
// and -rate (messages per second per direction) with a suite's defaults;
// rateNote, when not empty, is added to -rate's help in parentheses. Call
// it in a package-level declaration, so that the flags exist when Main
// parses them. prefix names the temporary directory of the binaries.
func NewSuite(prefix string, n int, rate float64, rateNote string) *Suite {
	rateHelp := "messages per second per direction"
	if rateNote != "" {
		rateHelp += " (" + rateNote + ")"
	}
	return &Suite{
		prefix: prefix,
		n:      flag.Int("n", n, "messages per direction in each scenario"),
		rate:   flag.Float64("rate", rate, rateHelp),
	}
}

// N is the -n flag: messages per direction in each scenario.
func (s *Suite) N() int { return *s.n }

// Rate is the -rate flag: messages per second per direction.
func (s *Suite) Rate() float64 { return *s.rate }

// Main is the suite's TestMain: it parses the flags, builds the binaries,
// runs the tests, prints table after them and returns the exit code for
// os.Exit (see proctest.Main).
func (s *Suite) Main(m *testing.M, table func() string) int {
	flag.Parse()
	return proctest.Main(m, s.prefix, &s.Binary, &s.NATSBinary, table)
}
