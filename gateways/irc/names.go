package irc

import (
	"fmt"
	"strings"
)

// MaxNickLength is the longest nick registration accepts. Servers may
// allow fewer (RFC 2812 says 9; most allow 30 or more): once a connection
// has seen the server's NICKLEN, registration uses that.
const MaxNickLength = 30

// nickSpecial are the non-alphanumeric characters RFC 2812 allows in a
// nick; "-" and digits may not start one.
const nickSpecial = "[]\\`_^{|}"

// checkNick returns why nick is not a valid IRC nick, "" when it is.
func checkNick(nick string, maxLen int) string {
	if nick == "" {
		return "a nick cannot be empty"
	}
	if len(nick) > maxLen {
		return fmt.Sprintf("%q has %d characters; the IRC server allows nicks of up to %d", nick, len(nick), maxLen)
	}
	for i := 0; i < len(nick); i++ {
		c := nick[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', strings.IndexByte(nickSpecial, c) >= 0:
		case (c >= '0' && c <= '9') || c == '-':
			if i == 0 {
				return fmt.Sprintf("%q: a nick cannot start with a digit or -", nick)
			}
		default:
			return fmt.Sprintf("%q: a nick may only hold letters, digits and - [ ] \\ ` _ ^ { | }", nick)
		}
	}
	return ""
}

// fold maps s to its canonical case under IRC's rfc1459 casemapping,
// where {}|^ are the lower case of []\~. Nicks and channels that fold
// equal are the same.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case r == '[':
			return '{'
		case r == ']':
			return '}'
		case r == '\\':
			return '|'
		case r == '~':
			return '^'
		}
		return r
	}, s)
}

// defaultChanTypes are the channel prefixes RFC 2811 defines, assumed
// until a server's ISUPPORT CHANTYPES says otherwise.
const defaultChanTypes = "#&+!"

// isChannel tells a channel name from a nick by its first character.
func isChannel(name, chanTypes string) bool {
	return len(name) > 1 && strings.IndexByte(chanTypes, name[0]) >= 0
}

// checkChannel returns why name cannot be a channel, "" when it can.
func checkChannel(name, chanTypes string) string {
	if !isChannel(name, chanTypes) {
		return fmt.Sprintf("%q is not a channel: channels start with one of %s", name, chanTypes)
	}
	if len(name) > 50 {
		return fmt.Sprintf("%q is longer than 50 characters", name)
	}
	if strings.ContainsAny(name, " ,\x07\r\n\x00") {
		return fmt.Sprintf("%q: a channel name cannot hold spaces, commas or control characters", name)
	}
	return ""
}
