package push

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// UnifiedPush endpoints are URLs a user gives, fetched by the gateway: an
// SSRF surface. Unless allow_private_endpoints is set, an endpoint whose
// host resolves to a loopback, private, link-local or otherwise
// non-public address is refused at registration, and the check is made
// again on every connection (the name may resolve elsewhere later: DNS
// rebinding). Redirects are not followed.

const maxEndpointLength = 2048

// checkEndpoint parses an endpoint URL and, unless private addresses are
// allowed, resolves its host and refuses non-public addresses. The error
// says why, for the user.
func checkEndpoint(ctx context.Context, raw string, allowPrivate bool) (*url.URL, error) {
	if len(raw) > maxEndpointLength {
		return nil, fmt.Errorf("the endpoint is longer than %d characters", maxEndpointLength)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("the endpoint is not an http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("the endpoint may not carry a user name or password")
	}
	if allowPrivate {
		return u, nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", u.Hostname())
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("the endpoint's host %s cannot be resolved", u.Hostname())
	}
	for _, a := range addrs {
		if !public(a) {
			return nil, fmt.Errorf("the endpoint's host %s resolves to %s, a loopback, private or link-local address, which this gateway does not send to (push.allow_private_endpoints)", u.Hostname(), a.Unmap())
		}
	}
	return u, nil
}

// nonPublic are ranges that IsPrivate and friends do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("100::/64"),       // discard
}

// public reports whether a is a globally routable unicast address.
func public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsInterfaceLocalMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// endpointClient is the HTTP client for UnifiedPush endpoints.
func endpointClient(allowPrivate bool, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if !public(ap.Addr()) {
				return fmt.Errorf("%w: %s is not a public address", errPrivateAddress, ap.Addr())
			}
			return nil
		}
	}
	t := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: t,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

var errPrivateAddress = errors.New("endpoint resolves to a private address")
