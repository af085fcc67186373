package irc

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/internal/tlsca"
)

// Config is the gateways.<name>.irc block.
type Config struct {
	// Server is the IRC server, host:port (6667 for plain text, 6697 for
	// TLS, by convention). Required.
	Server string `koanf:"server"`
	// TLS connects with TLS; TLSInsecureSkipVerify accepts any certificate
	// (a test network with a self-signed one).
	TLS                   bool `koanf:"tls"`
	TLSInsecureSkipVerify bool `koanf:"tls_insecure_skip_verify"`
	// TLSCAFile is a PEM file of CA certificates that the server's
	// certificate must chain to, instead of the system's roots (a network
	// with a private CA). Read once, when the adapter is constructed.
	TLSCAFile string `koanf:"tls_ca_file"`
	// Password is the server password (PASS), sent by every connection.
	Password     string `koanf:"password" secret:"true"`
	PasswordFile string `koanf:"password_file"`
	// Realname is the "real name" other IRC users see in WHOIS.
	Realname string `koanf:"realname"`
	// FloodBurst lines go out at once; after that one line per
	// FloodInterval, per connection. ngircd handles three commands a
	// second per client and disconnects one whose unread input passes
	// 2 KiB; the defaults stay under that. Busy public networks expect
	// about one line every two seconds.
	FloodBurst    int           `koanf:"flood_burst"`
	FloodInterval time.Duration `koanf:"flood_interval"`
	// MaxConnections bounds the IRC connections (one per registered user)
	// the gateway opens; 0 means no limit. IRC servers limit connections
	// per address, so set it to what the server allows the gateway.
	MaxConnections int `koanf:"max_connections"`
	// ConnectTimeout bounds connecting and registering one connection.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// PingInterval: after this long without a line from the server, the
	// connection sends a PING; with no answer within PingTimeout it is
	// considered dead and reconnected.
	PingInterval time.Duration `koanf:"ping_interval"`
	PingTimeout  time.Duration `koanf:"ping_timeout"`
}

// Defaults for the optional keys.
const (
	DefaultRealname       = "XMPP user (xmppgw)"
	DefaultFloodBurst     = 4
	DefaultFloodInterval  = 500 * time.Millisecond
	DefaultConnectTimeout = 30 * time.Second
	DefaultPingInterval   = 2 * time.Minute
	DefaultPingTimeout    = 30 * time.Second
)

func newConfig() any {
	return &Config{
		Realname:       DefaultRealname,
		FloodBurst:     DefaultFloodBurst,
		FloodInterval:  DefaultFloodInterval,
		ConnectTimeout: DefaultConnectTimeout,
		PingInterval:   DefaultPingInterval,
		PingTimeout:    DefaultPingTimeout,
	}
}

// Validate reports every problem, each "key: what is wrong" (the loader
// prefixes the key path).
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Server == "" {
		bad("server", "required (host:port of the IRC server, e.g. irc.example.net:6697)")
	} else if host, port, err := net.SplitHostPort(c.Server); err != nil || host == "" {
		bad("server", "%q is not host:port", c.Server)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("server", "%q: port must be 1 to 65535", c.Server)
	}
	if c.TLSInsecureSkipVerify && !c.TLS {
		bad("tls_insecure_skip_verify", "only applies with tls: true")
	}
	if c.TLSCAFile != "" {
		switch {
		case !c.TLS:
			bad("tls_ca_file", "only applies with tls: true")
		case c.TLSInsecureSkipVerify:
			bad("tls_ca_file", "contradicts tls_insecure_skip_verify, which accepts any certificate: set one of them")
		default:
			if _, err := tlsca.Load(c.TLSCAFile); err != nil {
				bad("tls_ca_file", "%v", err)
			}
		}
	}
	if strings.ContainsAny(c.Password, " \r\n\x00") {
		bad("password", "must not contain spaces or line breaks")
	}
	if strings.ContainsAny(c.Realname, "\r\n\x00") {
		bad("realname", "must not contain line breaks")
	}
	if c.FloodBurst < 1 {
		bad("flood_burst", "must be at least 1 line, not %d", c.FloodBurst)
	}
	if c.FloodInterval < 10*time.Millisecond {
		bad("flood_interval", "must be at least 10ms, not %s", c.FloodInterval)
	}
	if c.MaxConnections < 0 {
		bad("max_connections", "must be 0 (no limit) or more, not %d", c.MaxConnections)
	}
	if c.ConnectTimeout < 100*time.Millisecond {
		bad("connect_timeout", "must be at least 100ms, not %s", c.ConnectTimeout)
	}
	if c.PingInterval < 100*time.Millisecond {
		bad("ping_interval", "must be at least 100ms, not %s", c.PingInterval)
	}
	if c.PingTimeout < 100*time.Millisecond {
		bad("ping_timeout", "must be at least 100ms, not %s", c.PingTimeout)
	}
	return errors.Join(errs...)
}
