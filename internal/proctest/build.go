package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildTags are the build tags of every xmppgw binary: goolm selects
// mautrix's pure-Go Olm for the Matrix adapter's end-to-end encryption
// (without it mautrix needs cgo and libolm; the adapter then has none).
const BuildTags = "goolm"

// The packages Build compiles. The nats-server module is a dependency of the
// bus package, so this is the very version the embedded bus runs.
const (
	GatewayPackage = "github.com/xmppgw/xmppgw/cmd/xmppgw"
	NATSPackage    = "github.com/nats-io/nats-server/v2"
)

// Build compiles xmppgw and nats-server into dir (without -race: the suites
// measure behaviour at realistic speed) and returns their paths. The go
// tool's output goes to stderr.
func Build(dir string) (gateway, natsServer string, err error) {
	gateway = filepath.Join(dir, "xmppgw")
	natsServer = filepath.Join(dir, "nats-server")
	for _, b := range []struct{ out, pkg string }{
		{gateway, GatewayPackage},
		{natsServer, NATSPackage},
	} {
		if err := BuildPackage(b.out, b.pkg); err != nil {
			return "", "", err
		}
	}
	return gateway, natsServer, nil
}

// BuildPackage compiles pkg into the binary out.
func BuildPackage(out, pkg string) error {
	build := exec.Command("go", "build", "-tags", BuildTags, "-o", out, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	return nil
}

// Main is a suite's TestMain after flag.Parse: it builds the binaries into a
// new temporary directory (named with prefix) and sets *gateway and
// *natsServer, runs the tests, prints the suite's table (when table returns
// something) on stdout after them, removes the directory and returns the
// exit code for os.Exit.
func Main(m *testing.M, prefix string, gateway, natsServer *string, table func() string) int {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *gateway, *natsServer, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if t := table(); t != "" {
		fmt.Print("\n" + t)
	}
	return code
}
