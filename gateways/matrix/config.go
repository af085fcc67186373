package matrix

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/internal/tlsca"
)

// Config is the gateways.<name>.matrix block.
type Config struct {
	// AllowedHomeservers, when not empty, are the only homeservers users
	// may log in to: host names ("matrix.org") compared with the host of
	// the URL the user gives. Empty: any homeserver.
	AllowedHomeservers []string `koanf:"allowed_homeservers"`
	// AllowPrivateHomeservers accepts homeservers whose host resolves to
	// a loopback, private or link-local address, and plain http on
	// loopback. Off by default: the URL comes from the user, and the
	// gateway would otherwise make requests into its own network for them
	// (SSRF). For tests and private deployments.
	AllowPrivateHomeservers bool `koanf:"allow_private_homeservers"`
	// TLSCAFile is a PEM file of CA certificates trusted for homeservers
	// instead of the system's. Read when the adapter is constructed.
	TLSCAFile string `koanf:"tls_ca_file"`
	// SyncTimeout is the long-poll of /sync: how long the homeserver may
	// hold a sync open when nothing happens.
	SyncTimeout time.Duration `koanf:"sync_timeout"`
	// RequestTimeout bounds every other request to a homeserver.
	RequestTimeout time.Duration `koanf:"request_timeout"`
	// DeviceName is the display name of the device each login creates,
	// shown in the user's session list.
	DeviceName string `koanf:"device_name"`
	// CryptoDir is where the end-to-end encryption state of each user's
	// device is kept (one SQLite file per device: its Olm account, Olm and
	// Megolm sessions, the devices it knows). Default: matrix-crypto/<name>
	// in the process's data directory (bus.data_dir); required when that is
	// not set (an external bus).
	CryptoDir string `koanf:"crypto_dir"`
}

// Defaults for the optional keys.
const (
	DefaultSyncTimeout    = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultDeviceName     = "xmppgw (XMPP gateway)"
)

func newConfig() any {
	return &Config{SyncTimeout: DefaultSyncTimeout, RequestTimeout: DefaultRequestTimeout, DeviceName: DefaultDeviceName}
}

// Validate reports every problem, each "key: what is wrong".
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for i, h := range c.AllowedHomeservers {
		if h == "" || strings.ContainsAny(h, "/: ") {
			bad(fmt.Sprintf("allowed_homeservers[%d]", i), "%q is not a host name (write matrix.example.org, without scheme or port)", h)
		}
	}
	if c.TLSCAFile != "" {
		if _, err := tlsca.Load(c.TLSCAFile); err != nil {
			bad("tls_ca_file", "%v", err)
		}
	}
	if c.SyncTimeout < time.Second || c.SyncTimeout > 5*time.Minute {
		bad("sync_timeout", "must be 1s to 5m, not %s", c.SyncTimeout)
	}
	if c.RequestTimeout < 100*time.Millisecond {
		bad("request_timeout", "must be at least 100ms, not %s", c.RequestTimeout)
	}
	return errors.Join(errs...)
}
