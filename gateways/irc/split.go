package irc

import (
	"strings"
	"unicode/utf8"
)

// minChunk keeps splitting possible when a long target leaves little room.
const minChunk = 32

// splitText cuts a message body into IRC lines of at most limit bytes: at
// each newline, then within long lines at a space when one is near the
// limit (the space is dropped, as servers strip trailing spaces anyway),
// else at a UTF-8 boundary (never inside a character). CR and NUL are
// dropped; blank lines are skipped because IRC cannot carry them.
func splitText(body string, limit int) []string {
	limit = max(limit, minChunk)
	body = strings.Map(func(r rune) rune {
		if r == '\r' || r == 0 {
			return -1
		}
		return r
	}, body)
	var out []string
	for ln := range strings.SplitSeq(body, "\n") {
		for len(ln) > limit {
			cut, next := cutAt(ln, limit)
			// A run of spaces longer than a line cuts into chunks of
			// white space only: IRC cannot carry them, like blank lines.
			if strings.TrimSpace(ln[:cut]) != "" {
				out = append(out, ln[:cut])
			}
			ln = ln[next:]
		}
		if strings.TrimSpace(ln) != "" {
			out = append(out, ln)
		}
	}
	return out
}

// cutAt picks where to cut s, which is longer than limit: at the last
// space in the final quarter of the allowed bytes, or else at the last
// character boundary that fits. The rest starts at next.
func cutAt(s string, limit int) (cut, next int) {
	cut = limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut == 0 { // not UTF-8 at all: any byte boundary will do
		cut = limit
	}
	if sp := strings.LastIndexByte(s[:cut+1], ' '); sp > 0 && sp >= cut-cut/4 {
		return sp, sp + 1
	}
	return cut, cut
}

// defaultUserHost is the room left for "user@host" in the prefix a server
// puts on our lines before it learns otherwise: a ten-character user name
// with ident's "~" and a 63-character host name.
const defaultUserHost = 1 + 10 + 1 + 63

// textLimit is how many bytes of text fit in one relayed line
//
//	:nick!user@host PRIVMSG target :text\r\n
//
// with overhead bytes more around the text (a CTCP ACTION's framing).
func textLimit(nick string, userHost int, command, target string, overhead int) int {
	return maxLine - (1 + len(nick) + 1 + userHost + 1 + len(command) + 1 + len(target) + 2 + 2) - overhead
}
