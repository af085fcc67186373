package tapback

import (
	"strings"
	"unicode"
)

// Reaction is a phone's text rendering of a reaction, parsed.
type Reaction struct {
	Emoji     string // the XEP-0444 emoji, e.g. "👍"
	Quote     string // the quoted text, as the phone sent it (without the quotes and without a trailing ellipsis)
	Truncated bool   // the phone shortened the quote (it ended with "…" or "...")
	Removed   bool   // the removal form ("Removed a like from “…”")
}

// phrase is one row of the table. A reaction text is prefix followed by the
// quote; for a row with an empty emoji it is prefix, the emoji itself, infix,
// then the quote.
type phrase struct {
	prefix  string
	emoji   string // "" → the emoji is in the text, between prefix and infix
	infix   string // only for rows with an empty emoji
	removed bool
}

// phrases is the English table; see the package documentation for where each
// row comes from. Order does not matter: a text matches at most one row.
var phrases = []phrase{
	{prefix: "Liked ", emoji: "👍"},
	{prefix: "Loved ", emoji: "❤️"},
	{prefix: "Laughed at ", emoji: "😂"},
	{prefix: "Emphasized ", emoji: "‼️"},
	{prefix: "Emphasised ", emoji: "‼️"},
	{prefix: "Questioned ", emoji: "❓"},
	{prefix: "Disliked ", emoji: "👎"},
	{prefix: "Reacted ", infix: " to "},

	{prefix: "Removed a like from ", emoji: "👍", removed: true},
	{prefix: "Removed a heart from ", emoji: "❤️", removed: true},
	{prefix: "Removed a laugh from ", emoji: "😂", removed: true},
	{prefix: "Removed an exclamation from ", emoji: "‼️", removed: true},
	{prefix: "Removed a question mark from ", emoji: "❓", removed: true},
	{prefix: "Removed a dislike from ", emoji: "👎", removed: true},
	{prefix: "Removed a ", infix: " from ", removed: true},
	{prefix: "Removed ", infix: " from ", removed: true},
}

var (
	openQuotes  = []string{"“", `"`}
	closeQuotes = []string{"”", `"`}
	ellipses    = []string{"…", "..."}
)

// Parse recognises body as a reaction phrase; ok is false for anything else
// (then the body is an ordinary message). Leading/trailing whitespace is ignored.
func Parse(body string) (r Reaction, ok bool) {
	body = strings.TrimSpace(body)
	for _, p := range phrases {
		rest, found := strings.CutPrefix(body, p.prefix)
		if !found {
			continue
		}
		emoji := p.emoji
		if emoji == "" {
			// The emoji contains no space, so the first infix ends it.
			var after string
			emoji, after, found = strings.Cut(rest, p.infix)
			if !found || !isEmoji(emoji) {
				continue
			}
			rest = after
		}
		quote, truncated, ok := parseQuote(rest)
		if !ok {
			continue
		}
		return Reaction{Emoji: emoji, Quote: quote, Truncated: truncated, Removed: p.removed}, true
	}
	return Reaction{}, false
}

// parseQuote takes a quoted text that must make up all of s: an opening
// quote, the text, and a closing quote, or, when the phone cut the text, an
// ellipsis with or without the closing quote after it.
func parseQuote(s string) (quote string, truncated, ok bool) {
	opened := false
	for _, q := range openQuotes {
		if rest, found := strings.CutPrefix(s, q); found {
			s, opened = rest, true
			break
		}
	}
	if !opened {
		return "", false, false
	}
	closed := false
	for _, q := range closeQuotes {
		if rest, found := strings.CutSuffix(s, q); found {
			s, closed = rest, true
			break
		}
	}
	for _, e := range ellipses {
		if rest, found := strings.CutSuffix(s, e); found {
			s, truncated = rest, true
			break
		}
	}
	if !closed {
		if !truncated {
			return "", false, false // unterminated, or text after the closing quote
		}
		for _, q := range closeQuotes {
			if strings.HasSuffix(s, q) {
				return "", false, false // an ellipsis after the closing quote
			}
		}
	}
	if strings.TrimSpace(s) == "" {
		return "", false, false
	}
	return s, truncated, true
}

// Match returns the index in candidates (texts of messages of the
// conversation, newest first) of the message the quote refers to, or -1.
// The newest exact match wins; with r.Truncated (or when no exact match), the newest
// candidate that starts with the quote wins. Comparison normalises: Unicode
// NFC is NOT required (no new dependencies), but it folds curly/straight quotes and
// apostrophes (‘ ’ ‚ ‛ ′ → ', “ ” „ ‟ ″ → "), collapses runs of whitespace to one space, trims, and
// is case-sensitive otherwise. An empty quote matches nothing.
func Match(r Reaction, candidates []string) int {
	quote := normalize(r.Quote)
	if quote == "" {
		return -1
	}
	norm := make([]string, len(candidates))
	for i, c := range candidates {
		norm[i] = normalize(c)
	}
	if !r.Truncated {
		for i, c := range norm {
			if c == quote {
				return i
			}
		}
	}
	for i, c := range norm {
		if strings.HasPrefix(c, quote) {
			return i
		}
	}
	return -1
}

// normalize folds quote characters, collapses whitespace runs to one space
// and trims.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch r {
		case '‘', '’', '‚', '‛', '′':
			r = '\''
		case '“', '”', '„', '‟', '″':
			r = '"'
		}
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// pictographic lists the code points accepted as emoji proper: the
// pictographic blocks and the scattered emoji in older blocks. It is a
// superset of Unicode's Emoji property in places (all of Miscellaneous
// Symbols and Dingbats), which is harmless here: it only has to tell an emoji
// from a word.
var pictographic = [][2]rune{
	{0x00A9, 0x00A9}, {0x00AE, 0x00AE}, // © ®
	{0x203C, 0x203C}, {0x2049, 0x2049}, // ‼ ⁉
	{0x2122, 0x2122}, {0x2139, 0x2139}, // ™ ℹ
	{0x2194, 0x2199}, {0x21A9, 0x21AA}, // arrows
	{0x231A, 0x231B}, {0x2328, 0x2328}, {0x23CF, 0x23CF}, {0x23E9, 0x23F3}, {0x23F8, 0x23FA},
	{0x24C2, 0x24C2}, // Ⓜ
	{0x25AA, 0x25AB}, {0x25B6, 0x25B6}, {0x25C0, 0x25C0}, {0x25FB, 0x25FE},
	{0x2600, 0x27BF}, // Miscellaneous Symbols, Dingbats
	{0x2934, 0x2935},
	{0x2B05, 0x2B07}, {0x2B1B, 0x2B1C}, {0x2B50, 0x2B50}, {0x2B55, 0x2B55},
	{0x3030, 0x3030}, {0x303D, 0x303D}, {0x3297, 0x3297}, {0x3299, 0x3299},
	// U+1F000–U+1FAFF: Mahjong … Symbols and Pictographs Extended-A, which
	// include the regional indicators (U+1F1E6–U+1F1FF) and the skin-tone
	// modifiers (U+1F3FB–U+1F3FF).
	{0x1F000, 0x1FAFF},
}

// isEmoji reports whether s is non-empty and made only of emoji: pictographic
// code points, regional indicators, skin-tone modifiers, keycap sequences
// ([0-9#*] U+FE0F? U+20E3), joined or decorated by U+FE0F, U+200D and tag
// characters (U+E0020–U+E007F, subdivision flags). At least one code point
// must be an emoji proper, not only a joiner or selector.
func isEmoji(s string) bool {
	rs := []rune(s)
	proper := false
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '#' || r == '*' || ('0' <= r && r <= '9'):
			j := i + 1
			if j < len(rs) && rs[j] == 0xFE0F {
				j++
			}
			if j >= len(rs) || rs[j] != 0x20E3 {
				return false
			}
			i, proper = j, true
		case inRanges(r, pictographic):
			proper = true
		case r == 0xFE0F || r == 0x200D || (0xE0020 <= r && r <= 0xE007F):
		default:
			return false
		}
	}
	return proper
}

func inRanges(r rune, ranges [][2]rune) bool {
	for _, rg := range ranges {
		if rg[0] <= r && r <= rg[1] {
			return true
		}
	}
	return false
}
