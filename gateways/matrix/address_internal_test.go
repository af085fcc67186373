package matrix

import (
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestAddresses(t *testing.T) {
	for _, tc := range []struct {
		mxid id.UserID
		addr string
	}{
		{"@bob:example.org", "bob%example.org"},
		{"@bob:localhost:8448", "bob%localhost:8448"},
		{"@a.b_c=d/e:example.org", "a.b_c=d/e%example.org"},
	} {
		if got := userAddress(tc.mxid); got != tc.addr {
			t.Errorf("userAddress(%s) = %q, want %q", tc.mxid, got, tc.addr)
		}
		if got, ok := parseUser(tc.addr); !ok || got != tc.mxid {
			t.Errorf("parseUser(%q) = %q, %v; want %s", tc.addr, got, ok, tc.mxid)
		}
	}
	for _, bad := range []string{"bob", "bob%", "%example.org", "#room%example.org", "!x%example.org", "not a user", "bob%exa mple.org"} {
		if u, ok := parseUser(bad); ok {
			t.Errorf("parseUser(%q) = %s, want none", bad, u)
		}
	}
	for _, tc := range []struct{ room, addr string }{
		{"#room:example.org", "#room%example.org"},
		{"!opaque:example.org", "!opaque%example.org"},
		{"!v12roomidwithoutserver", "!v12roomidwithoutserver"},
	} {
		if got := roomAddress(tc.room); got != tc.addr {
			t.Errorf("roomAddress(%s) = %q, want %q", tc.room, got, tc.addr)
		}
		if got, ok := parseRoom(tc.addr); !ok || got != tc.room {
			t.Errorf("parseRoom(%q) = %q, %v; want %s", tc.addr, got, ok, tc.room)
		}
		if !isRoomAddress(tc.addr) {
			t.Errorf("isRoomAddress(%q) = false", tc.addr)
		}
	}
	for _, bad := range []string{"#room", "#%example.org", "#room%", "bob%example.org", "#ro om%example.org"} {
		if r, ok := parseRoom(bad); ok {
			t.Errorf("parseRoom(%q) = %s, want none", bad, r)
		}
	}
}
