// Command xmppgw is the XMPP gateway daemon.
//
//	xmppgw run -c FILE           run the gateway
//	xmppgw run -c FILE --role R  run one part of it: component, adapters,
//	                             ingress (docs/scaling.md), or all (default)
//	xmppgw check-config -c FILE  print the effective configuration (secrets redacted)
//	xmppgw version               print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/xmppgw/xmppgw/config"
	"github.com/xmppgw/xmppgw/gateways"
	// The standard set of adapters.
	_ "github.com/xmppgw/xmppgw/gateways/irc"
	_ "github.com/xmppgw/xmppgw/gateways/matrix"
	_ "github.com/xmppgw/xmppgw/gateways/push"
	_ "github.com/xmppgw/xmppgw/gateways/sandbox"
	_ "github.com/xmppgw/xmppgw/gateways/sms/providers"
	_ "github.com/xmppgw/xmppgw/gateways/telnyx"
	_ "github.com/xmppgw/xmppgw/gateways/twilio"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

var started = time.Now()

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: xmppgw <command> [flags]

commands:
  run            run the gateway (xmppgw run -c FILE [--role component|adapters|ingress|all])
  check-config   validate a configuration and print it with secrets redacted
  version        print the version

Run "xmppgw <command> --help" for the flags of a command.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "check-config":
		return cmdCheckConfig(args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "xmppgw", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "xmppgw: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev + dirty + ")"
	}
	return v + " " + bi.GoVersion
}

// load parses flags and loads the configuration.
func load(name string, args []string, stderr io.Writer) (*config.Config, int) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xmppgw %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, 2
	}
	cfg, err := config.Load(config.Options{
		Flags:         fs,
		AdapterSchema: adapterSchema,
		KnownAdapters: gateways.IDs(),
	})
	if err == nil {
		err = checkAdapters(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: configuration error:\n%s\n", indent(err.Error()))
		return nil, 1
	}
	return cfg, -1
}

func adapterSchema(id string) (func() any, bool) {
	info, ok := gateways.Lookup(id)
	if !ok {
		return nil, false
	}
	return info.NewConfig, true
}

// checkAdapters constructs every adapter (no side effects) so that errors only
// an adapter can see are found by check-config too.
func checkAdapters(cfg *config.Config) error {
	var errs []error
	for name, g := range cfg.Gateways {
		if g.Adapter == config.ExternalAdapter {
			continue // runs elsewhere; config checked its block
		}
		info, _ := gateways.Lookup(g.Adapter)
		if _, err := info.New(gateways.Params{Name: name, Domain: g.Domain, Config: g.AdapterConfig, PublicURL: cfg.HTTP.PublicURL, DataDir: cfg.Bus.DataDir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			errs = append(errs, fmt.Errorf("gateways.%s.%s: %w", name, g.Adapter, err))
		}
	}
	return errors.Join(errs...)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	cfg, code := load("check-config", args, stderr)
	if cfg == nil {
		return code
	}
	out, err := cfg.Redacted()
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: %v\n", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	cfg, code := load("run", args, stderr)
	if cfg == nil {
		return code
	}
	logger := newLogger(cfg.Log, stderr)
	defer startCPUProfile(logger)()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runGateway(ctx, cfg, logger); err != nil {
		logger.Error("xmppgw stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// startCPUProfile writes a CPU profile of the whole run to the file named by
// the CPUPROFILE environment variable (gperftools' name for it), when set:
// for docs/performance.md, off by default, and no listener is opened for
// it. Not XMPPGW_…: those are all configuration keys. The returned func
// ends the profile.
func startCPUProfile(logger *slog.Logger) func() {
	path := os.Getenv("CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		logger.Error("CPUPROFILE: not profiling", "err", err)
		return func() {}
	}
	logger.Info("writing a CPU profile", "file", path)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
