package sms

import (
	"strings"
	"unicode"
)

// maxQuote is the longest quote line of a reply, in characters, without
// its "> ".
const maxQuote = 60

// renderReply puts text under a one-line quote (package documentation):
//
//	> quote, at most maxQuote characters…
//	text
//
// An empty quote leaves text alone; an empty text (a reply that is media
// only) leaves the quote line alone.
func renderReply(quote, text string) string {
	q := strings.Join(strings.Fields(quote), " ")
	if q == "" {
		return text
	}
	ellipsis := "…"
	if _, enc := Segments(q + text); enc == "GSM-7" {
		ellipsis = "..." // "…" is not GSM-7: it would make the SMS UCS-2
	}
	line := "> " + shorten(q, maxQuote, ellipsis)
	if text == "" {
		return line
	}
	return line + "\n" + text
}

// shorten returns s if it has at most limit characters, else a prefix of
// it and ellipsis, limit characters in all: cut after a word when one ends
// within the last 20 characters kept, never inside a character sequence
// (before a combining mark, a variation selector or a skin tone, or
// after a zero-width joiner).
func shorten(s string, limit int, ellipsis string) string {
	rs := []rune(s)
	if len(rs) <= limit {
		return s
	}
	n := limit - len([]rune(ellipsis))
	if sp := lastSpace(rs[:n+1], n-20); sp > 0 {
		n = sp // the space itself may be the one after the last word kept
	}
	for n > 0 && (continues(rs[n]) || rs[n-1] == '\u200d') {
		n--
	}
	return strings.TrimRight(string(rs[:n]), " ") + ellipsis
}

// lastSpace is the index of the last space in rs at or after from, or -1.
func lastSpace(rs []rune, from int) int {
	for i := len(rs) - 1; i >= max(from, 0); i-- {
		if rs[i] == ' ' {
			return i
		}
	}
	return -1
}

// continues: r belongs to the character before it.
func continues(r rune) bool {
	return unicode.Is(unicode.M, r) || r == '\u200d' || r == '\ufe0f' || r == '\u20e3' ||
		(r >= 0x1F3FB && r <= 0x1F3FF) || (r >= 0xE0020 && r <= 0xE007F)
}
