package matrix

import (
	"strings"

	"maunium.net/go/mautrix/id"
)

// Addresses. A contact's or room's address is the localpart of its JID
// (the component applies XEP-0106 on top, so characters a localpart cannot
// hold, such as '/', travel escaped): the Matrix identifier without its
// sigil's server separator, ':' becoming '%'.
//
//	@bob:example.org        ⇄ bob%example.org        (a user: no sigil)
//	#room:example.org       ⇄ #room%example.org      (a room alias)
//	!opaque:example.org     ⇄ !opaque%example.org    (a room id)
//
// '%' cannot occur in a server name, so the last '%' separates the server
// and the mapping is reversible. A user's localpart keeps no '@' sigil, so
// user contacts read like ordinary JIDs (bob%example.org@matrix.example).

// userAddress maps a Matrix user to a contact address.
func userAddress(u id.UserID) string {
	local, server, err := u.Parse()
	if err != nil || server == "" {
		return ""
	}
	return local + "%" + server
}

// roomAddress maps a room alias or id to a room address.
func roomAddress(s string) string {
	if i := strings.LastIndexByte(s, ':'); i > 0 && (s[0] == '#' || s[0] == '!') {
		return s[:i] + "%" + s[i+1:]
	}
	return s
}

// isRoomAddress tells a room address from a contact's.
func isRoomAddress(a string) bool {
	return strings.HasPrefix(a, "#") || strings.HasPrefix(a, "!")
}

// parseUser maps a contact address back to a Matrix user id; false when it
// names none.
func parseUser(a string) (id.UserID, bool) {
	i := strings.LastIndexByte(a, '%')
	if i <= 0 || i == len(a)-1 || isRoomAddress(a) {
		return "", false
	}
	u := id.NewUserID(a[:i], a[i+1:])
	if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
		return "", false
	}
	if strings.ContainsAny(a[i+1:], " /@%") {
		return "", false
	}
	return u, true
}

// parseRoom maps a room address back to an alias ("#room:server") or a room
// id ("!x:server"); false when it names none.
func parseRoom(a string) (string, bool) {
	if !isRoomAddress(a) || len(a) < 2 {
		return "", false
	}
	i := strings.LastIndexByte(a, '%')
	if i < 0 {
		if a[0] == '!' { // room ids of room version 12 have no server part
			return a, true
		}
		return "", false
	}
	if i <= 1 || i == len(a)-1 || strings.ContainsAny(a, " :") {
		return "", false
	}
	return a[:i] + ":" + a[i+1:], true
}
