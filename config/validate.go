package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// gatewayName keeps names safe as NATS subject tokens, metric labels and URL
// path segments.
var gatewayName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

func validate(c *Config, names []string, errs *errList) {
	if msg := hostPort(c.XMPP.Server, true); msg != "" {
		errs.add("xmpp.server", msg)
	}
	validateRole(c, errs)
	validateBus(c.Bus, errs)
	validateHTTP(c.HTTP, c.Role, errs)
	if !slices.Contains(logLevels, c.Log.Level) {
		errs.add("log.level", fmt.Sprintf("%q is not one of %s", c.Log.Level, strings.Join(logLevels, ", ")))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		errs.add("log.format", fmt.Sprintf("%q is not one of %s", c.Log.Format, strings.Join(logFormats, ", ")))
	}

	if len(names) == 0 {
		errs.add("gateways", "no gateway configured")
	}
	byDomain := map[string]string{}
	for _, name := range names { // sorted, so the first owner of a domain is stable
		g := c.Gateways[name]
		p := "gateways." + name
		if !gatewayName.MatchString(name) {
			errs.add(p, "name must match "+gatewayName.String()+" (it is used in NATS subjects, metrics and URLs)")
		}
		if msg := validDomain(g.Domain); msg != "" {
			errs.add(p+".domain", msg)
		} else if other, dup := byDomain[g.Domain]; dup {
			errs.add(p+".domain", fmt.Sprintf("%q is also the domain of gateway %q (gateways.%s.domain)", g.Domain, other, other))
		} else {
			byDomain[g.Domain] = name
		}
		if g.Secret == "" && g.SecretFile == "" {
			errs.add(p+".secret", fmt.Sprintf("required (set secret, secret_file or %sGATEWAYS__%s__SECRET)",
				EnvPrefix, strings.ToUpper(name)))
		}
		if g.Adapter == ExternalAdapter && c.Bus.URL == "" && c.Bus.Listen == "" {
			errs.add(p+".adapter", fmt.Sprintf("%q needs a bus that another process can reach: set bus.listen (the embedded server's client port) or bus.url (external NATS)", ExternalAdapter))
		}
		if g.Server != "" {
			if msg := hostPort(g.Server, true); msg != "" {
				errs.add(p+".server", msg)
			}
		}
		if g.MaxConcurrency < 1 || g.MaxConcurrency > 1024 {
			errs.add(p+".max_concurrency", fmt.Sprintf("must be 1 to 1024, not %d", g.MaxConcurrency))
		}
		if g.Quota.Messages < 0 {
			errs.add(p+".quota.messages", fmt.Sprintf("must be 0 (unlimited) or more, not %d", g.Quota.Messages))
		}
		if g.Quota.Messages > 0 && g.Quota.Per <= 0 {
			errs.add(p+".quota.per", fmt.Sprintf("must be a positive duration such as 1h, not %s", g.Quota.Per))
		}
		if g.AllowedDomains == nil {
			if validDomain(g.Domain) == "" {
				errs.add(p+".allowed_domains", fmt.Sprintf("cannot default to the parent of %q, which has none; set it", g.Domain))
			}
		} else if len(g.AllowedDomains) == 0 {
			errs.add(p+".allowed_domains", "empty: no one could use this gateway")
		}
		for i, d := range g.AllowedDomains {
			if msg := validDomain(d); msg != "" {
				errs.add(p+".allowed_domains."+strconv.Itoa(i), msg)
			}
		}
		for i, a := range g.Admins {
			if msg := bareJID(a); msg != "" {
				errs.add(p+".admins."+strconv.Itoa(i), msg)
			}
		}
	}
}

func validateBus(b Bus, errs *errList) {
	if b.IDMapTTL < time.Hour {
		errs.add("bus.idmap_ttl", fmt.Sprintf("%v is too short: at least 1h (default 720h); corrections and reactions of messages older than this are refused", b.IDMapTTL))
	}
	if b.Replicas < 1 || b.Replicas > 5 {
		errs.add("bus.replicas", fmt.Sprintf("%d is out of range 1..5", b.Replicas))
	}
	if b.URL == "" {
		if b.Replicas > 1 && b.Replicas <= 5 {
			errs.add("bus.replicas", fmt.Sprintf("%d needs bus.url: the single embedded server accepts only 1", b.Replicas))
		}
		if b.DataDir == "" {
			errs.add("bus.data_dir", "required for the embedded server (bus.url is empty)")
		}
		for key, v := range map[string]string{
			"bus.credentials_file": b.CredentialsFile,
			"bus.tls_ca_file":      b.TLSCAFile,
			"bus.tls_cert_file":    b.TLSCertFile,
			"bus.tls_key_file":     b.TLSKeyFile,
		} {
			if v != "" {
				errs.add(key, "only used with bus.url (the embedded server needs none)")
			}
		}
	} else {
		for u := range strings.SplitSeq(b.URL, ",") {
			u = strings.TrimSpace(u)
			if u == "" {
				errs.add("bus.url", fmt.Sprintf("%q has an empty entry", b.URL))
				continue
			}
			if _, err := url.Parse(u); err != nil {
				errs.add("bus.url", fmt.Sprintf("%q: %v", u, err))
			}
		}
	}
	if b.TLSCertFile != "" && b.TLSKeyFile == "" {
		errs.add("bus.tls_key_file", "required with bus.tls_cert_file")
	}
	if b.TLSKeyFile != "" && b.TLSCertFile == "" {
		errs.add("bus.tls_cert_file", "required with bus.tls_key_file")
	}
	if b.Listen != "" {
		if msg := hostPort(b.Listen, false); msg != "" {
			errs.add("bus.listen", msg)
		}
	}
}

// validateRole checks the role and that a split deployment shares a bus:
// each process of it reaches the others only through NATS.
func validateRole(c *Config, errs *errList) {
	if !slices.Contains(Roles, c.Role) {
		errs.add("role", fmt.Sprintf("%q is not one of %s", c.Role, strings.Join(Roles, ", ")))
		return
	}
	if c.Role != RoleAll && c.Bus.URL == "" && c.Bus.Listen == "" {
		errs.add("bus.url", fmt.Sprintf("required with role %q: the processes of a split deployment share one bus; set bus.url to the NATS servers (an external cluster, or another xmppgw's bus.listen)", c.Role))
	}
	if c.Role == RoleIngress && c.HTTP.Listen == "" {
		errs.add("http.listen", fmt.Sprintf("required with role %q: the ingress serves the adapters' webhooks", c.Role))
	}
}

func validateHTTP(h HTTP, role string, errs *errList) {
	if h.Listen != "" {
		if msg := hostPort(h.Listen, false); msg != "" {
			errs.add("http.listen", msg)
		}
	}
	if h.PublicURL == "" {
		return
	}
	// A component or adapters process names the ingress' URL (status
	// callbacks, media links) without serving it.
	if h.Listen == "" && (role == RoleAll || role == RoleIngress) {
		errs.add("http.public_url", "set, but http.listen is empty so there is no HTTP listener")
	}
	u, err := url.Parse(h.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
		errs.add("http.public_url", fmt.Sprintf("%q must be an absolute http or https URL without user info, query or fragment", h.PublicURL))
	}
}

// defaultPublicURL derives a URL from a listen address; an empty host means
// all interfaces, reachable at least as localhost.
func defaultPublicURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err == nil && host == "" {
		return "http://" + net.JoinHostPort("localhost", port)
	}
	return "http://" + listen
}

// hostPort checks a host:port address; needHost for addresses we dial
// rather than listen on.
func hostPort(s string, needHost bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port: %v", s, err)
	}
	if needHost && host == "" {
		return fmt.Sprintf("%q has no host", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%q: port must be a number from 1 to 65535", s)
	}
	return ""
}

// validDomain checks a bare domain JID (ASCII, lower case), returning what
// is wrong or "".
func validDomain(d string) string {
	switch {
	case d == "":
		return "required"
	case strings.ContainsAny(d, "@/"):
		return fmt.Sprintf("%q is not a bare domain (no \"@\" or \"/\" allowed)", d)
	case strings.ToLower(d) != d:
		return fmt.Sprintf("%q must be lower case", d)
	case len(d) > 253:
		return fmt.Sprintf("%q is longer than 253 bytes", d)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.IndexFunc(label, func(r rune) bool {
				return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-'
			}) >= 0 {
			return fmt.Sprintf("%q is not a valid domain (dot-separated labels of a-z, 0-9 and inner \"-\")", d)
		}
	}
	return ""
}

// parentDomain returns sms.example.com → example.com.
func parentDomain(d string) (string, bool) {
	_, parent, ok := strings.Cut(d, ".")
	return parent, ok && parent != ""
}

// bareJID checks user@domain without a resource.
func bareJID(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	switch {
	case !ok || local == "":
		return fmt.Sprintf("%q is not a bare JID (want user@domain)", s)
	case strings.Contains(s, "/"):
		return fmt.Sprintf("%q is not a bare JID (no resource allowed)", s)
	case strings.ContainsFunc(local, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(`"&'/:<>@`, r)
	}):
		return fmt.Sprintf("%q has a character not allowed in a JID localpart", s)
	}
	if msg := validDomain(domain); msg != "" {
		return fmt.Sprintf("%q: domain %s", s, msg)
	}
	return ""
}
