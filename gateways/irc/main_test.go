package irc_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain lets the integration tests run side by side unless -parallel
// was given: they spend their time waiting on a real IRC server's flood
// control and penalties (a second at a time), not on CPU, so the default
// of GOMAXPROCS would make the package needlessly slow on small machines.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}
