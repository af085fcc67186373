package irc

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseMessage(t *testing.T) {
	tests := []struct {
		line string
		want message
	}{
		{"PING :irc.test", message{command: "PING", params: []string{"irc.test"}}},
		{":bob!~b@host PRIVMSG alice :hi there", message{prefix: "bob!~b@host", command: "PRIVMSG", params: []string{"alice", "hi there"}}},
		{":irc.test 005 alice CHANTYPES=# PREFIX=(ov)@+ :are supported", message{prefix: "irc.test", command: "005", params: []string{"alice", "CHANTYPES=#", "PREFIX=(ov)@+", "are supported"}}},
		{"@msgid=abc;time=2024-01-01T00:00:00Z :bob!b@h PRIVMSG #c :x", message{
			tags: map[string]string{"msgid": "abc", "time": "2024-01-01T00:00:00Z"}, prefix: "bob!b@h", command: "PRIVMSG", params: []string{"#c", "x"}}},
		{`@a=x\sy\:z\\w\r\n;b;c= :s NOTICE * :hi`, message{
			tags: map[string]string{"a": "x y;z\\w\r\n", "b": "", "c": ""}, prefix: "s", command: "NOTICE", params: []string{"*", "hi"}}},
		{`@a=trailing\ CMD`, message{tags: map[string]string{"a": "trailing"}, command: "CMD"}},
		{"privmsg  #c   :  spaced  ", message{command: "PRIVMSG", params: []string{"#c", "  spaced  "}}},
		{":s 353 me = #c :@a +b c\r\n", message{prefix: "s", command: "353", params: []string{"me", "=", "#c", "@a +b c"}}},
		{"MODE #c +o bob", message{command: "MODE", params: []string{"#c", "+o", "bob"}}},
		{"PRIVMSG #c ::-)", message{command: "PRIVMSG", params: []string{"#c", ":-)"}}},
		{"PRIVMSG #c :", message{command: "PRIVMSG", params: []string{"#c", ""}}},
	}
	for _, tt := range tests {
		got, err := parseMessage(tt.line)
		if err != nil {
			t.Errorf("parseMessage(%q): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseMessage(%q)\n got %#v\nwant %#v", tt.line, got, tt.want)
		}
	}
	for _, bad := range []string{"", "   ", "\r\n", ":prefix-only", "@tags-only", "@t :p", ": :", "PRIV-MSG x", "12 x", "1234 x"} {
		if _, err := parseMessage(bad); err == nil {
			t.Errorf("parseMessage(%q) succeeded", bad)
		}
	}
}

func TestMessageAccessors(t *testing.T) {
	m, _ := parseMessage(":bob!~b@host PRIVMSG alice :hi")
	if m.nick() != "bob" || m.param(0) != "alice" || m.param(5) != "" || m.trailing() != "hi" || m.numeric() {
		t.Errorf("accessors of %#v", m)
	}
	s, _ := parseMessage(":irc.test 433 * alice :in use")
	if s.nick() != "" || !s.numeric() {
		t.Errorf("a server prefix has no nick; 433 is numeric: %#v", s)
	}
	for _, tt := range []struct {
		m    message
		want string
	}{
		{message{command: "NICK", params: []string{"bob"}}, "NICK bob"},
		{message{command: "PRIVMSG", params: []string{"#c", "two words"}}, "PRIVMSG #c :two words"},
		{message{command: "PART", params: []string{"#c", ""}}, "PART #c :"},
		{message{command: "PRIVMSG", params: []string{"bob", ":)"}}, "PRIVMSG bob ::)"},
		{message{prefix: "me", command: "QUIT"}, ":me QUIT"},
	} {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// FuzzParseMessage: the parser never panics, and what it parses formats
// back into a line that parses to the same message (tags aside).
func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		"PING :irc.test",
		":bob!~b@host PRIVMSG alice :hi there",
		"@msgid=abc;+draft/x=\\s :n!u@h PRIVMSG #c :\x01ACTION waves\x01",
		":irc.test 353 alice = #c :@a +b ~c",
		"MODE #c +ov-b a b *!*@*",
		"@",
		":",
		"  :x  Y  z  :",
		"\x00\xff :\r",
		": :",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseMessage(line)
		if err != nil {
			return
		}
		if m.command == "" || strings.ContainsAny(m.command, " ") {
			t.Fatalf("command %q from %q", m.command, line)
		}
		for i, p := range m.params[:max(0, len(m.params)-1)] {
			if p == "" || strings.Contains(p, " ") || p[0] == ':' {
				t.Fatalf("middle param %d %q from %q", i, p, line)
			}
		}
		if strings.ContainsAny(line, "\r\n") || strings.HasPrefix(m.prefix, ":") {
			return // line ends inside the line: not round-trippable
		}
		m.tags = nil
		again, err := parseMessage(m.String())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip of %q: %#v → %q → %#v (%v)", line, m, m.String(), again, err)
		}
	})
}

func TestCTCP(t *testing.T) {
	for _, tt := range []struct {
		text, cmd, args string
		ok              bool
	}{
		{"\x01ACTION waves\x01", "ACTION", "waves", true},
		{"\x01action waves", "ACTION", "waves", true},
		{"\x01VERSION\x01", "VERSION", "", true},
		{"\x01PING 123 456\x01", "PING", "123 456", true},
		{"hello", "", "", false},
		{"\x01", "", "", false},
		{"\x01\x01", "", "", false},
	} {
		cmd, args, ok := parseCTCP(tt.text)
		if cmd != tt.cmd || args != tt.args || ok != tt.ok {
			t.Errorf("parseCTCP(%q) = %q, %q, %v", tt.text, cmd, args, ok)
		}
	}
	if got := ctcp("ACTION", "waves"); got != "\x01ACTION waves\x01" {
		t.Errorf("ctcp = %q", got)
	}
}

func TestCleanText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain", "plain"},
		{"\x02bold\x02 \x1ditalic\x1d \x1funder\x1f \x1estrike\x1e \x11mono\x11 \x16rev\x16 end\x0f", "bold italic under strike mono rev end"},
		{"\x034red\x03 \x0304,12on blue\x03 \x03,5comma", "red on blue ,5comma"},
		{"\x031,2", ""},
		{"\x03123", "3"}, // two digits at most
		{"\x04FF0000red\x04 \x04ff0000,00ff00x \x04abc", "red x abc"},
		{"tab\tand\nnewline", "tab\tand\nnewline"},
		{"bell\x07 del\x7f", "bell del"},
		{"caf\xe9", "café"},           // Latin-1
		{"mixed ü \xfc", "mixed ü ü"}, // partly UTF-8: the invalid byte is Latin-1
		{"\x03", ""},
	} {
		if got := cleanText(tt.in); got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckNick(t *testing.T) {
	for _, ok := range []string{"alice", "Alice", "a", "[x]", "x-1", "^_^", "{a|b}", "a\\b", "`tick", strings.Repeat("a", 30)} {
		if why := checkNick(ok, MaxNickLength); why != "" {
			t.Errorf("checkNick(%q) = %q, want valid", ok, why)
		}
	}
	for _, bad := range []string{"", "1a", "-a", "a b", "a@b", "a!b", "a.b", "#a", "ü", strings.Repeat("a", 31), "a,b", "a:b", "a*"} {
		if checkNick(bad, MaxNickLength) == "" {
			t.Errorf("checkNick(%q) accepted", bad)
		}
	}
	if checkNick("abcdefghij", 9) == "" {
		t.Error("a nick over the server's limit accepted")
	}
}

func TestFold(t *testing.T) {
	if fold("[A]\\~") != "{a}|^" || fold("Alice") != fold("aLICE") {
		t.Errorf("fold: %q", fold("[A]\\~"))
	}
}

func TestAltNick(t *testing.T) {
	for _, tt := range []struct {
		nick     string
		n, limit int
		want     string
	}{
		{"alice", 1, 30, "alice_"},
		{"alice", 2, 30, "alice__"},
		{"abcdefghi", 1, 9, "abcdefgh_"},
		{"abcdefghi", 3, 9, "abcdef___"},
	} {
		if got := altNick(tt.nick, tt.n, tt.limit); got != tt.want {
			t.Errorf("altNick(%q, %d, %d) = %q, want %q", tt.nick, tt.n, tt.limit, got, tt.want)
		}
	}
}

func TestUsername(t *testing.T) {
	for in, want := range map[string]string{"Alice": "alice", "[x]": "x", "^_^": "xmpp", "abcdefghijkl": "abcdefghij", "a-1": "a1"} {
		if got := username(in); got != want {
			t.Errorf("username(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestISupport(t *testing.T) {
	is := defaultISupport()
	is.parse([]string{"CHANTYPES=#&", "PREFIX=(qaohv)~&@%+", "CHANMODES=beI,k,l,imnst", "NICKLEN=16", "NETWORK=Test", "-FOO"})
	if is.chanTypes != "#&" || is.prefixModes != "qaohv" || is.prefixChars != "~&@%+" || is.nickLen != 16 || is.chanModes[2] != "l" {
		t.Errorf("parsed %+v", is)
	}
	is.parse([]string{"PREFIX=(ov)@", "CHANTYPES="}) // malformed: ignored
	if is.prefixModes != "qaohv" || is.chanTypes != "#&" {
		t.Errorf("malformed values changed %+v", is)
	}
	if p, n := is.splitPrefix("@+bob"); p != "@+" || n != "bob" {
		t.Errorf("splitPrefix = %q, %q", p, n)
	}
	for _, tt := range []struct {
		mode   byte
		adding bool
		want   bool
	}{
		{'o', true, true}, {'o', false, true}, {'b', false, true}, {'k', false, true},
		{'l', true, true}, {'l', false, false}, {'m', true, false}, {'z', true, false},
	} {
		if got := is.modeTakesParam(tt.mode, tt.adding); got != tt.want {
			t.Errorf("modeTakesParam(%c, %v) = %v", tt.mode, tt.adding, got)
		}
	}
}

func TestSplitText(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		limit int
		want  []string
	}{
		{"short", "hello", 100, []string{"hello"}},
		{"newlines, CR, NUL and blank lines", "a\r\nb\n\n \nc\x00d\n", 100, []string{"a", "b", "cd"}},
		{"cut at a space near the limit", strings.Repeat("a", 30) + " " + strings.Repeat("b", 30), 40, []string{strings.Repeat("a", 30), strings.Repeat("b", 30)}},
		{"a space exactly at the limit", strings.Repeat("a", 40) + " b", 40, []string{strings.Repeat("a", 40), "b"}},
		{"no space near: cut in the word", "ab " + strings.Repeat("c", 60), 40, []string{"ab " + strings.Repeat("c", 37), strings.Repeat("c", 23)}},
		{"never inside a character", strings.Repeat("€", 20), 32, []string{strings.Repeat("€", 10), strings.Repeat("€", 10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitText(tt.body, tt.limit); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("splitText = %q\nwant %q", got, tt.want)
			}
		})
	}
}

func FuzzSplitText(f *testing.F) {
	f.Add("hello world", 40)
	f.Add(strings.Repeat("日本語 ", 50), 33)
	f.Add("a\nb\r\n\x00c", 10)
	f.Fuzz(func(t *testing.T, body string, limit int) {
		limit = minChunk + abs(limit)%500
		parts := splitText(body, limit)
		for _, p := range parts {
			if len(p) > limit || strings.ContainsAny(p, "\r\n\x00") || strings.TrimSpace(p) == "" {
				t.Fatalf("part %q (limit %d)", p, limit)
			}
			if utf8.ValidString(body) && !utf8.ValidString(p) {
				t.Fatalf("part %q cut inside a character", p)
			}
		}
		// Nothing but line ends, CR, NUL, cut spaces and blank lines (only
		// white space: IRC cannot carry them) is lost.
		keep := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r == '\r' || r == '\n' || r == 0 || r == ' ' {
					return -1
				}
				return r
			}, s)
		}
		// Bytes that are not UTF-8 become U+FFFD, one per byte (XMPP
		// bodies are always UTF-8; this only keeps the comparison fair).
		valid := strings.Map(func(r rune) rune { return r }, body)
		var want strings.Builder
		for ln := range strings.SplitSeq(strings.NewReplacer("\r", "", "\x00", "").Replace(valid), "\n") {
			if strings.TrimSpace(ln) != "" {
				want.WriteString(ln)
			}
		}
		if keep(strings.Join(parts, "")) != keep(want.String()) {
			t.Fatalf("text lost splitting %q", body)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // the most negative int
			return 0
		}
		return -n
	}
	return n
}

func TestPrivmsgLines(t *testing.T) {
	got := privmsgLines("alice", 16, "bob", "/me waves")
	if !reflect.DeepEqual(got, []string{"PRIVMSG bob :\x01ACTION waves\x01"}) {
		t.Errorf("action: %q", got)
	}
	if got := privmsgLines("alice", 16, "bob", "/me"); !reflect.DeepEqual(got, []string{"PRIVMSG bob :\x01ACTION\x01"}) {
		t.Errorf("bare /me: %q", got)
	}
	if got := privmsgLines("alice", 16, "bob", "/meh"); !reflect.DeepEqual(got, []string{"PRIVMSG bob :/meh"}) {
		t.Errorf("/meh is not an action: %q", got)
	}
	// The relayed line, ":alice!" + 16 bytes + " " + line + CR LF, fits.
	for _, l := range privmsgLines("alice", 16, "#chan", strings.Repeat("x ", 1000)) {
		if n := len(":alice!") + 16 + 1 + len(l) + 2; n > maxLine {
			t.Errorf("relayed line of %d bytes", n)
		}
	}
	for _, l := range privmsgLines("alice", defaultUserHost, "#chan", "/me "+strings.Repeat("y", 1000)) {
		if n := len(":alice!") + defaultUserHost + 1 + len(l) + 2; n > maxLine || !strings.HasSuffix(l, "\x01") {
			t.Errorf("relayed action line of %d bytes: %q", n, l)
		}
	}
}
