package irc

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// maxLine is RFC 1459's limit on one message, CR LF included (tags, an
// IRCv3 addition, come on top).
const maxLine = 512

// message is one IRC protocol message:
//
//	[@tags] [:prefix] command [params…] [:trailing]
type message struct {
	tags    map[string]string // nil when none
	prefix  string            // without the colon; "" when none
	command string            // upper case, or a three-digit numeric
	params  []string          // the trailing parameter is the last one
}

var (
	errEmpty     = errors.New("irc: empty line")
	errNoCommand = errors.New("irc: line has no valid command")
)

// parseMessage parses one line without its CR LF. It is lenient where
// servers differ (runs of spaces, a missing trailing colon) and never
// panics.
func parseMessage(line string) (message, error) {
	var m message
	rest := strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(rest) == "" {
		return m, errEmpty
	}
	if strings.HasPrefix(rest, "@") {
		var tags string
		tags, rest, _ = strings.Cut(rest[1:], " ")
		m.tags = parseTags(tags)
	}
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, ":") {
		m.prefix, rest, _ = strings.Cut(rest[1:], " ")
	}
	rest = strings.TrimLeft(rest, " ")
	m.command, rest, _ = strings.Cut(rest, " ")
	if !validCommand(m.command) {
		return m, errNoCommand
	}
	m.command = strings.ToUpper(m.command)
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if rest[0] == ':' {
			m.params = append(m.params, rest[1:])
			break
		}
		var p string
		p, rest, _ = strings.Cut(rest, " ")
		m.params = append(m.params, p)
	}
	return m, nil
}

// validCommand: a command is letters, or a three-digit numeric.
func validCommand(c string) bool {
	if c == "" {
		return false
	}
	if len(c) == 3 && c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9' {
		return true
	}
	for i := 0; i < len(c); i++ {
		if (c[i] < 'a' || c[i] > 'z') && (c[i] < 'A' || c[i] > 'Z') {
			return false
		}
	}
	return true
}

// parseTags parses "a=1;b;c=x\sy" (IRCv3 message-tags), unescaping values.
func parseTags(s string) map[string]string {
	tags := map[string]string{}
	for kv := range strings.SplitSeq(s, ";") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		tags[k] = unescapeTag(v)
	}
	return tags
}

func unescapeTag(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			b.WriteByte(v[i])
			continue
		}
		i++
		if i == len(v) {
			break // a lone trailing backslash is dropped
		}
		switch v[i] {
		case ':':
			b.WriteByte(';')
		case 's':
			b.WriteByte(' ')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(v[i]) // \\ and unknown escapes
		}
	}
	return b.String()
}

// param returns the i-th parameter, "" when there are fewer.
func (m message) param(i int) string {
	if i < len(m.params) {
		return m.params[i]
	}
	return ""
}

// trailing is the last parameter (a message's text).
func (m message) trailing() string {
	if len(m.params) == 0 {
		return ""
	}
	return m.params[len(m.params)-1]
}

// nick is the nick of a user prefix ("bob" of "bob!~b@host"); "" for a
// server prefix, which has no "!" or "@".
func (m message) nick() string {
	if !strings.ContainsAny(m.prefix, "!@") {
		return ""
	}
	n, _, _ := strings.Cut(m.prefix, "!")
	n, _, _ = strings.Cut(n, "@")
	return n
}

// numeric reports a three-digit reply code.
func (m message) numeric() bool {
	c := m.command
	return len(c) == 3 && c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9'
}

// String formats the message as a line without CR LF. The last parameter
// is written as trailing when it has to be (empty, a space, a leading
// colon). Callers make sure parameters hold no CR, LF or NUL.
func (m message) String() string {
	var b strings.Builder
	if m.prefix != "" {
		b.WriteByte(':')
		b.WriteString(m.prefix)
		b.WriteByte(' ')
	}
	b.WriteString(m.command)
	for i, p := range m.params {
		b.WriteByte(' ')
		if i == len(m.params)-1 && (p == "" || p[0] == ':' || strings.IndexByte(p, ' ') >= 0) {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}

// line builds a message; the last parameter is free text.
func line(command string, params ...string) string {
	return message{command: command, params: params}.String()
}

// safeParam removes what would end or corrupt a line.
func safeParam(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
}

// CTCP (client-to-client protocol): a PRIVMSG or NOTICE whose text is
// "\x01COMMAND args\x01". ACTION is /me.
const ctcpDelim = '\x01'

// parseCTCP splits a CTCP text into its command and arguments; ok is false
// for ordinary text. The closing delimiter is optional, as some clients
// omit it.
func parseCTCP(text string) (command, args string, ok bool) {
	if len(text) < 2 || text[0] != ctcpDelim {
		return "", "", false
	}
	body := strings.TrimSuffix(text[1:], string(ctcpDelim))
	command, args, _ = strings.Cut(body, " ")
	return strings.ToUpper(command), args, command != ""
}

func ctcp(command, args string) string {
	if args == "" {
		return string(ctcpDelim) + command + string(ctcpDelim)
	}
	return string(ctcpDelim) + command + " " + args + string(ctcpDelim)
}

// cleanText makes IRC text fit for XMPP: mIRC formatting codes (bold,
// colours…) are removed, as are other control characters XML cannot carry,
// and text that is not UTF-8 is read as Latin-1, the usual legacy charset.
func cleanText(s string) string {
	if !utf8.ValidString(s) {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				r = rune(s[i]) // Latin-1 byte → the same code point
			}
			b.WriteRune(r)
			i += size
		}
		s = b.String()
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\x03': // colour: \x03[fg[,bg]], one or two digits each
			fg := digits(s[i+1:], 2)
			i += fg
			if fg > 0 && i+2 < len(s) && s[i+1] == ',' && digits(s[i+2:], 2) > 0 {
				i += 1 + digits(s[i+2:], 2)
			}
		case c == '\x04': // hex colour: \x04[RRGGBB[,RRGGBB]]
			i += hexDigits(s[i+1:], 6)
			if i+2 < len(s) && s[i+1] == ',' && hexDigits(s[i+2:], 6) == 6 {
				i += 7
			}
		case c == '\t' || c == '\n':
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			// \x02 bold, \x0f reset, \x11 monospace, \x16 reverse,
			// \x1d italic, \x1e strike, \x1f underline, and the rest
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// digits counts leading ASCII digits of s, at most n.
func digits(s string, n int) int {
	i := 0
	for i < n && i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// hexDigits counts leading hex digits of s: n when there are at least n,
// else 0 (a hex colour is all six digits or none).
func hexDigits(s string, n int) int {
	i := 0
	for i < n && i < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[i]) >= 0 {
		i++
	}
	if i < n {
		return 0
	}
	return i
}
