package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Config is the whole xmppgw configuration.
type Config struct {
	// Role is what this process runs: RoleAll (default) or one part of a
	// deployment split over processes (see docs/scaling.md).
	Role     string             `koanf:"role"`
	XMPP     XMPP               `koanf:"xmpp"`
	Bus      Bus                `koanf:"bus"`
	HTTP     HTTP               `koanf:"http"`
	Log      Log                `koanf:"log"`
	Gateways map[string]Gateway `koanf:"gateways"` // key = gateway name
}

// Roles: which parts of the gateway a process runs.
const (
	// RoleAll runs everything in one process.
	RoleAll = "all"
	// RoleComponent runs the XMPP edge: the component streams, one active
	// process per gateway (the others stand by for the lease).
	RoleComponent = "component"
	// RoleAdapters runs the adapter workers: they consume the outbound
	// stream; any number share the work.
	RoleAdapters = "adapters"
	// RoleIngress serves the adapters' webhooks (inbound traffic) only.
	RoleIngress = "ingress"
)

// Roles lists the valid values of the role key.
var Roles = []string{RoleAll, RoleComponent, RoleAdapters, RoleIngress}

// XMPP configures the connection to the XMPP server.
type XMPP struct {
	// Server is host:port of the XMPP server's component port.
	Server string `koanf:"server"`
}

// Bus configures the NATS bus joining the adapters.
type Bus struct {
	// URL is empty for the embedded nats-server, else comma-separated NATS URLs.
	URL             string `koanf:"url" secret:"userinfo"`
	CredentialsFile string `koanf:"credentials_file"` // only with URL
	TLSCAFile       string `koanf:"tls_ca_file"`      // only with URL
	TLSCertFile     string `koanf:"tls_cert_file"`    // only with URL; needs TLSKeyFile
	TLSKeyFile      string `koanf:"tls_key_file"`
	// DataDir holds the embedded server's JetStream store; required without URL.
	DataDir string `koanf:"data_dir"`
	// Listen is host:port for the embedded server; empty opens no TCP port.
	Listen string `koanf:"listen"`
	// Replicas of each stream, 1..5; 1 without URL because a single embedded
	// server rejects more.
	Replicas int `koanf:"replicas"`
	// SyncAlways makes the embedded server fsync every write before
	// acknowledging it, so a power loss cannot take acknowledged messages.
	SyncAlways bool `koanf:"sync_always"`
	// IDMapTTL is how long the gateway remembers which network message
	// each XMPP message became (bucket xmppgw_ids): corrections,
	// reactions, retractions and replies of older messages are refused as
	// too old. Default 720h (30 days).
	IDMapTTL time.Duration `koanf:"idmap_ttl"`
}

// HTTP configures the HTTP listener (webhooks, metrics).
type HTTP struct {
	// Listen is host:port; empty means no HTTP listener.
	Listen string `koanf:"listen"`
	// PublicURL is how the outside world reaches Listen (for webhook URLs).
	// It defaults to "http://"+Listen when Listen is set.
	PublicURL string `koanf:"public_url"`
}

// Log configures log/slog.
type Log struct {
	Level  string `koanf:"level"`  // debug, info, warn or error
	Format string `koanf:"format"` // text or json
}

// Gateway is one XEP-0114 component and the adapter behind it.
type Gateway struct {
	// Domain is the component's JID domain, e.g. sms.example.com.
	Domain     string `koanf:"domain"`
	Secret     string `koanf:"secret" secret:"true"`
	SecretFile string `koanf:"secret_file"`
	// Adapter is the adapter ID, e.g. "sandbox" or "twilio", or
	// ExternalAdapter for an adapter that runs as its own process.
	Adapter string `koanf:"adapter"`
	// Server overrides xmpp.server for this gateway; see [Gateway.ServerAddr].
	Server string `koanf:"server"`
	// AllowedDomains defaults to the parent of Domain.
	AllowedDomains []string `koanf:"allowed_domains"`
	// Admins are bare JIDs.
	Admins []string `koanf:"admins"`
	// Quota is each user's send allowance through this gateway.
	Quota Quota `koanf:"quota"`
	// MaxConcurrency bounds the sends in progress to the network at once
	// (providers such as Twilio answer 429 above their concurrency limit).
	// Default DefaultMaxConcurrency.
	MaxConcurrency int `koanf:"max_concurrency"`
	// AdapterConfig is the decoded adapter-specific block found under the key
	// equal to the adapter ID (gateways.sms.twilio.*), as a value created by
	// the schema function (see Options). nil when the adapter has no block and
	// the schema returns nil.
	AdapterConfig any `koanf:"-"`
}

// Quota bounds what one user may send: Messages per Per, as a token bucket
// (a burst of Messages, refilled evenly). Messages 0 means unlimited.
type Quota struct {
	Messages int           `koanf:"messages"` // default 1000
	Per      time.Duration `koanf:"per"`      // default 1h
}

// DefaultMaxConcurrency is gateways.<name>.max_concurrency when unset.
const DefaultMaxConcurrency = 8

// Quota defaults: generous for a person, a ceiling for a runaway client.
const (
	DefaultQuotaMessages = 1000
	DefaultQuotaPer      = time.Hour
)

// ServerAddr returns the XMPP server address this gateway connects to: its
// own override, else c.XMPP.Server.
func (g Gateway) ServerAddr(c Config) string {
	if g.Server != "" {
		return g.Server
	}
	return c.XMPP.Server
}

// Options tell [Load] where to read from and which adapters exist.
type Options struct {
	// File is the YAML path; "" means the value of -c/--config in Flags, if
	// any, else no file.
	File string
	// Env is the environment as from os.Environ; nil means os.Environ().
	Env []string
	// Flags is a parsed flag set prepared by RegisterFlags; may be nil.
	Flags *pflag.FlagSet
	// AdapterSchema returns a constructor for the typed config of an adapter
	// ID, or ok=false if the adapter ID is unknown. newConfig may be nil when
	// the adapter takes no config block; then any block under its key is an
	// error. newConfig should return a pointer to a struct, which may be
	// pre-filled with defaults. A nil AdapterSchema knows no adapter.
	// ExternalAdapter is built in and never asked about: its block is
	// [External].
	AdapterSchema func(adapterID string) (newConfig func() any, ok bool)
	// KnownAdapters are listed in the "unknown adapter" message, with
	// ExternalAdapter.
	KnownAdapters []string
}

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "XMPPGW_"

const redacted = "[redacted]"

func defaults() map[string]any {
	return map[string]any{
		"role": RoleAll,
		"xmpp": map[string]any{"server": "127.0.0.1:5347"},
		"bus":  map[string]any{"data_dir": "./data", "replicas": 1, "sync_always": true, "idmap_ttl": "720h"},
		"log":  map[string]any{"level": "info", "format": "text"},
	}
}

// Load merges defaults, the YAML file, the environment and the flags, then
// decodes and validates the result. A validation failure returns every
// problem found, joined with errors.Join and sorted by key.
func Load(opts Options) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaults(), ""), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}

	path := opts.File
	if path == "" {
		path = ConfigFile(opts.Flags)
	}
	if path != "" {
		if err := loadFile(k, path); err != nil {
			return nil, err
		}
	}

	environ := os.Environ
	if opts.Env != nil {
		environ = func() []string { return opts.Env }
	}
	envp := env.Provider(".", env.Opt{
		Prefix:        EnvPrefix,
		TransformFunc: envKey,
		EnvironFunc:   environ,
	})
	if err := k.Load(envp, nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}

	if opts.Flags != nil {
		if err := loadFlags(k, opts.Flags); err != nil {
			return nil, err
		}
	}

	return build(k.Raw(), opts)
}

func loadFile(k *koanf.Koanf, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read file %q: %w", path, err)
	}
	mp, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		return fmt.Errorf("config: parse file %q: %w", path, err)
	}
	if mp == nil { // empty file
		return nil
	}
	pruneNulls(mp, defaults())
	// No delimiter: keys are taken as written, so a map key containing a dot
	// (a JID, say) is not split into levels.
	if err := k.Load(confmap.Provider(mp, ""), nil); err != nil {
		return fmt.Errorf("config: load file %q: %w", path, err)
	}
	return nil
}

// pruneNulls drops YAML nulls where a default exists, because a section left
// empty with its keys commented out ("bus:") should keep the defaults rather
// than wipe them.
func pruneNulls(mp, def map[string]any) {
	for key, v := range mp {
		d, ok := def[key]
		if !ok {
			continue
		}
		if v == nil {
			delete(mp, key)
			continue
		}
		sub, ok1 := v.(map[string]any)
		dsub, ok2 := d.(map[string]any)
		if ok1 && ok2 {
			pruneNulls(sub, dsub)
		}
	}
}

// envKey maps XMPPGW_GATEWAYS__SMS__SECRET to gateways.sms.secret.
func envKey(name, value string) (string, any) {
	name = strings.TrimPrefix(name, EnvPrefix)
	if name == "" {
		return "", nil
	}
	return strings.ReplaceAll(strings.ToLower(name), "__", "."), value
}

// build decodes and validates the merged raw map. raw is owned by build.
func build(raw map[string]any, opts Options) (*Config, error) {
	var errs errList

	// Adapter blocks are not fields of Gateway; take them out before the
	// strict walk and decode, and handle them with the adapter's own schema.
	blocks := map[string]any{}
	gwFields, _ := structKeys(reflect.TypeFor[Gateway]())
	if gws, ok := raw["gateways"].(map[string]any); ok {
		for name, g := range gws {
			gm, ok := g.(map[string]any)
			if !ok {
				continue
			}
			// Per-gateway defaults, filled where the key is absent so that an
			// explicit 0 (unlimited) stays 0.
			q, _ := gm["quota"].(map[string]any)
			if q == nil {
				q = map[string]any{}
			}
			if _, ok := q["messages"]; !ok {
				q["messages"] = DefaultQuotaMessages
			}
			if _, ok := q["per"]; !ok {
				q["per"] = DefaultQuotaPer.String()
			}
			gm["quota"] = q
			if _, ok := gm["max_concurrency"]; !ok {
				gm["max_concurrency"] = DefaultMaxConcurrency
			}
			id, _ := gm["adapter"].(string)
			if _, isField := gwFields[id]; id == "" || isField {
				continue
			}
			if b, ok := gm[id]; ok {
				blocks[name] = b
				delete(gm, id)
			}
		}
	}

	checkKeys("", raw, reflect.TypeFor[Config](), &errs)

	var c Config
	if err := decode(raw, &c); err != nil {
		errs.addDecode("", err)
		return nil, errs.join()
	}

	// A component or adapters process is not where providers post to: its
	// public_url, if any, is the ingress', so none is derived from its own
	// listener (which serves metrics and probes).
	if c.HTTP.PublicURL == "" && c.HTTP.Listen != "" && (c.Role == RoleAll || c.Role == RoleIngress) {
		c.HTTP.PublicURL = defaultPublicURL(c.HTTP.Listen)
	}

	names := make([]string, 0, len(c.Gateways))
	for name := range c.Gateways {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g := c.Gateways[name]
		prefix := "gateways." + name
		resolveSecretFiles(prefix, reflect.ValueOf(&g).Elem(), &errs)
		g.AdapterConfig = adapterConfig(prefix, g.Adapter, blocks[name], opts, &errs)
		if g.AllowedDomains == nil && validDomain(g.Domain) == "" {
			if p, ok := parentDomain(g.Domain); ok {
				g.AllowedDomains = []string{p}
			}
		}
		c.Gateways[name] = g
	}

	validate(&c, names, &errs)
	if err := errs.join(); err != nil {
		return nil, err
	}
	return &c, nil
}

// adapterConfig decodes the adapter block of one gateway into the adapter's
// own type, resolves its secret files and runs its Validate method.
func adapterConfig(prefix, id string, block any, opts Options, errs *errList) any {
	if id == "" {
		errs.add(prefix+".adapter", "required")
		return nil
	}
	var newConfig func() any
	ok := false
	switch {
	case id == ExternalAdapter:
		newConfig, ok = newExternal, true
	case opts.AdapterSchema != nil:
		newConfig, ok = opts.AdapterSchema(id)
	}
	if !ok {
		known := slices.Clone(opts.KnownAdapters)
		if !slices.Contains(known, ExternalAdapter) {
			known = append(known, ExternalAdapter)
		}
		sort.Strings(known)
		errs.add(prefix+".adapter", fmt.Sprintf("unknown adapter %q (known: %s)", id, strings.Join(known, ", ")))
		return nil
	}
	key := prefix + "." + id
	var cfg any
	if newConfig != nil {
		cfg = newConfig()
	}
	if cfg == nil {
		if block != nil {
			errs.add(key, fmt.Sprintf("adapter %q takes no configuration block", id))
		}
		return nil
	}
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		// A programming error in the adapter, reported rather than panicking.
		errs.add(key, fmt.Sprintf("adapter %q schema returned %T, want a non-nil pointer", id, cfg))
		return nil
	}

	checkKeys(key, block, v.Type(), errs)
	if block != nil {
		if err := decode(block, cfg); err != nil {
			errs.addDecode(key, err)
			return cfg
		}
	}
	if v.Elem().Kind() == reflect.Struct {
		resolveSecretFiles(key, v.Elem(), errs)
	}
	if val, ok := cfg.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if line = strings.TrimSpace(line); line != "" {
					k, _, _ := strings.Cut(line, ":")
					errs.addErr(key+"."+k, key+"."+line, err)
				}
			}
		}
	}
	return cfg
}

// decode is strict (unused keys are errors, names match tags exactly) and
// weakly typed, because environment and flag values arrive as strings.
func decode(input, out any) error {
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:          "koanf",
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		MatchName:        func(mapKey, fieldName string) bool { return mapKey == fieldName },
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			splitList,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
		Result: out,
	})
	if err != nil {
		return fmt.Errorf("config: decoder: %w", err)
	}
	return d.Decode(input)
}

// splitList turns "a, b" into ["a" "b"] for slice fields, which is how lists
// arrive from the environment and from flags.
func splitList(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() == reflect.Uint8 {
		return data, nil
	}
	parts := []string{}
	for p := range strings.SplitSeq(reflect.ValueOf(data).String(), ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return parts, nil
}

// keyError is one problem with one key.
type keyError struct {
	key  string // for sorting
	text string
	err  error // the cause, if any, for errors.Is/As
}

func (e *keyError) Error() string { return e.text }
func (e *keyError) Unwrap() error { return e.err }

type errList []*keyError

func (l *errList) add(key, msg string) {
	*l = append(*l, &keyError{key: key, text: key + ": " + msg})
}

func (l *errList) addErr(key, text string, err error) {
	*l = append(*l, &keyError{key: key, text: text, err: err})
}

func (l *errList) unknown(key string) {
	*l = append(*l, &keyError{key: key, text: fmt.Sprintf("unknown key %q", key)})
}

// addDecode splits a mapstructure error into one error per field so each
// names its full dotted key.
func (l *errList) addDecode(prefix string, err error) {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			l.addDecode(prefix, e)
		}
		return
	}
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		var inner *mapstructure.DecodeError
		if errors.As(de.Unwrap(), &inner) {
			l.addDecode(prefix, de.Unwrap())
			return
		}
		key := joinKey(prefix, strings.NewReplacer("[", ".", "]", "").Replace(de.Name()))
		l.addErr(key, key+": "+de.Unwrap().Error(), err)
		return
	}
	if u := errors.Unwrap(err); u != nil {
		l.addDecode(prefix, u)
		return
	}
	l.addErr(prefix, joinKey(prefix, "")+": "+err.Error(), err)
}

func (l errList) join() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].key != l[j].key {
			return l[i].key < l[j].key
		}
		return l[i].text < l[j].text
	})
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func joinKey(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix
	}
	return prefix + "." + key
}

// flagKeys maps the named flags to configuration keys.
var flagKeys = map[string]string{
	"role":            "role",
	"log-level":       "log.level",
	"log-format":      "log.format",
	"xmpp-server":     "xmpp.server",
	"bus-url":         "bus.url",
	"bus-data-dir":    "bus.data_dir",
	"bus-listen":      "bus.listen",
	"http-listen":     "http.listen",
	"http-public-url": "http.public_url",
}

// RegisterFlags adds the configuration flags to fs: -c/--config FILE, a flag
// for each common key, and --set key=value (repeatable) for any key.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.StringP("config", "c", "", "YAML configuration `file`")
	fs.String("role", RoleAll, "what this process runs: all, component, adapters or ingress (role)")
	fs.String("log-level", "info", "log level: debug, info, warn or error (log.level)")
	fs.String("log-format", "text", "log format: text or json (log.format)")
	fs.String("xmpp-server", "127.0.0.1:5347", "XMPP server component `host:port` (xmpp.server)")
	fs.String("bus-url", "", "NATS `URLs`, comma-separated; empty runs an embedded server (bus.url)")
	fs.String("bus-data-dir", "./data", "embedded NATS data `directory` (bus.data_dir)")
	fs.String("bus-listen", "", "embedded NATS `host:port`; empty opens no port (bus.listen)")
	fs.String("http-listen", "", "HTTP `host:port`; empty disables HTTP (http.listen)")
	fs.String("http-public-url", "", "public `URL` of the HTTP listener (http.public_url)")
	fs.StringArray("set", nil, "set any configuration `key=value`, e.g. gateways.sms.secret=x (repeatable)")
}

// ConfigFile returns the value of -c/--config, or "" when fs is nil or lacks
// the flag.
func ConfigFile(fs *pflag.FlagSet) string {
	if fs == nil {
		return ""
	}
	s, err := fs.GetString("config")
	if err != nil {
		return ""
	}
	return s
}

func loadFlags(k *koanf.Koanf, fs *pflag.FlagSet) error {
	p := posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
		key, ok := flagKeys[f.Name]
		// An unset flag must not replace a file or environment value with
		// the flag's default.
		if !ok || !f.Changed {
			return "", nil
		}
		return key, f.Value.String()
	})
	if err := k.Load(p, nil); err != nil {
		return fmt.Errorf("config: flags: %w", err)
	}

	if f := fs.Lookup("set"); f == nil || !f.Changed {
		return nil
	}
	sets, err := fs.GetStringArray("set")
	if err != nil {
		return fmt.Errorf("config: --set: %w", err)
	}
	for _, s := range sets {
		key, val, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return fmt.Errorf("config: --set %q: want key=value", s)
		}
		if err := k.Set(key, val); err != nil {
			return fmt.Errorf("config: --set %q: %w", s, err)
		}
	}
	return nil
}
