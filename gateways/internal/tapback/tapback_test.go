package tapback

import (
	"strings"
	"testing"
)

// rows mirrors the phrase table: the prefix a phone writes and the emoji and
// removal flag it stands for. Rows whose emoji comes from the text are
// written with {E}.
var rows = []struct {
	prefix  string
	emoji   string
	removed bool
}{
	{"Liked ", "👍", false},
	{"Loved ", "❤️", false},
	{"Laughed at ", "😂", false},
	{"Emphasized ", "‼️", false},
	{"Emphasised ", "‼️", false},
	{"Questioned ", "❓", false},
	{"Disliked ", "👎", false},
	{"Reacted 👍 to ", "👍", false},
	{"Reacted 🥹 to ", "🥹", false},
	{"Reacted 👍🏽 to ", "👍🏽", false},
	{"Reacted 👩‍👩‍👧 to ", "👩‍👩‍👧", false},
	{"Reacted ❤️‍🔥 to ", "❤️‍🔥", false},
	{"Reacted 🇫🇷 to ", "🇫🇷", false},
	{"Reacted 1️⃣ to ", "1️⃣", false},
	{"Reacted 😂😂 to ", "😂😂", false},
	{"Removed a like from ", "👍", true},
	{"Removed a heart from ", "❤️", true},
	{"Removed a laugh from ", "😂", true},
	{"Removed an exclamation from ", "‼️", true},
	{"Removed a question mark from ", "❓", true},
	{"Removed a dislike from ", "👎", true},
	{"Removed 👍 from ", "👍", true},
	{"Removed 🥹 from ", "🥹", true},
	{"Removed a 👍 from ", "👍", true},
	{"Removed a 🎉 from ", "🎉", true},
}

func TestParseTable(t *testing.T) {
	quotes := []struct{ name, open, close string }{
		{"curly", "“", "”"},
		{"straight", `"`, `"`},
		{"mixed", "“", `"`},
	}
	const text = "See you at 7"
	for _, row := range rows {
		for _, q := range quotes {
			body := row.prefix + q.open + text + q.close
			t.Run(q.name+"/"+body, func(t *testing.T) {
				r, ok := Parse(body)
				want := Reaction{Emoji: row.emoji, Quote: text, Removed: row.removed}
				if !ok || r != want {
					t.Fatalf("Parse(%q) = %+v, %v; want %+v, true", body, r, ok, want)
				}
				// Surrounding whitespace is ignored.
				if r2, ok := Parse("  \n" + body + " \t\n"); !ok || r2 != want {
					t.Fatalf("Parse with surrounding whitespace = %+v, %v; want %+v, true", r2, ok, want)
				}
			})
		}
	}
}

// Every row of the package's own table parses, so the test rows above cannot
// silently drift from it.
func TestEveryPhraseRow(t *testing.T) {
	for _, p := range phrases {
		body := p.prefix
		want := p.emoji
		if want == "" {
			want = "🙂"
			body += want + p.infix
		}
		body += "“hello there”"
		r, ok := Parse(body)
		if !ok || r.Emoji != want || r.Quote != "hello there" || r.Removed != p.removed || r.Truncated {
			t.Errorf("Parse(%q) = %+v, %v", body, r, ok)
		}
	}
}

func TestParseQuoteContents(t *testing.T) {
	tests := []struct {
		body, quote string
	}{
		{`Liked “He said “hi” to me”`, `He said “hi” to me`},
		{`Liked "It's fine"`, `It's fine`},
		{"Loved “line one\nline two”", "line one\nline two"},
		{`Liked “ padded ”`, ` padded `},
		{`Liked “to”`, `to`},
		{`Reacted 👍 to “to be or not to be”`, `to be or not to be`},
		{`Removed 👍 from “from here”`, `from here`},
	}
	for _, tt := range tests {
		r, ok := Parse(tt.body)
		if !ok || r.Quote != tt.quote || r.Truncated {
			t.Errorf("Parse(%q) = %+v, %v; want quote %q", tt.body, r, ok, tt.quote)
		}
	}
}

func TestParseTruncated(t *testing.T) {
	const cut = "This is a very long message that the phone cut"
	long := "This is a very long message that the phone cut off before the end, as phones do"
	bodies := []string{
		"Loved “" + cut + "…”",
		"Loved “" + cut + "…",
		"Loved “" + cut + "...”",
		"Loved “" + cut + "...",
		`Loved "` + cut + `..."`,
		`Loved "` + cut + `...`,
		`Loved "` + cut + `…"`,
		"Removed a heart from “" + cut + "…",
	}
	candidates := []string{"ok", "something else", long, "older"}
	for _, body := range bodies {
		r, ok := Parse(body)
		if !ok || r.Emoji != "❤️" || r.Quote != cut || !r.Truncated {
			t.Errorf("Parse(%q) = %+v, %v; want ❤️ %q truncated", body, r, ok, cut)
			continue
		}
		if i := Match(r, candidates); i != 2 {
			t.Errorf("Match(%q) = %d, want 2", body, i)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, body := range []string{
		"",
		"   ",
		"hello",
		"I liked “that” movie",
		"Liked",
		"Liked ",
		"Liked an image",
		"Loved a photo",
		"Laughed at a movie",
		"Emphasized an attachment",
		"liked “lowercase”",
		"Liked“no space”",
		"Liked “”",
		`Liked ""`,
		"Liked “ ”",
		"Liked “…”",
		`Liked "..."`,
		"Liked “",
		`Liked "`,
		"Liked “unterminated",
		"Liked “x” and more text",
		`Liked "x" and more text`,
		"Liked “x”.",
		"Liked “x”…",
		"Liked “x” !",
		"Liked x",
		"Reacted badly to “news”",
		"Reacted 👍 badly to “news”",
		"Reacted to “news”",
		"Reacted  to “news”",
		"Reacted 👍 👎 to “news”",
		"Reacted 1 to “news”",
		"Reacted ‍ to “news”",
		"Reacted 👍 to",
		"Reacted 👍 to “”",
		"Reacted 👍 “x”",
		"Removed a like from “”",
		"Removed a like “x”",
		"Removed something from “x”",
		"Removed a thing from “x”",
		"Removed a 👍 from “x” yesterday",
		"Removed an image",
	} {
		if r, ok := Parse(body); ok {
			t.Errorf("Parse(%q) = %+v, true; want ok=false", body, r)
		}
	}
}

func TestIsEmoji(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"👍", true},
		{"❤️", true},
		{"❤", true},
		{"‼️", true},
		{"❓", true},
		{"👍🏽", true},
		{"🏽", true},
		{"👩‍👩‍👧", true},
		{"❤️‍🔥", true},
		{"🇫🇷", true},
		{"🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", true},
		{"1️⃣", true},
		{"#⃣", true},
		{"*️⃣", true},
		{"😂😂😂", true},
		{"©️", true},
		{"", false},
		{"1", false},
		{"1️", false},
		{"1️⃣2", false},
		{"a", false},
		{"badly", false},
		{"👍 ", false},
		{" 👍", false},
		{"👍a", false},
		{"\u200d", false},
		{"\ufe0f", false},
		{"\u20e3", false},
		{"\ufe0f\u200d\ufe0f", false},
		{"é", false},
		{"中", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		if got := isEmoji(tt.s); got != tt.want {
			t.Errorf("isEmoji(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name       string
		r          Reaction
		candidates []string
		want       int
	}{
		{"exact", Reaction{Quote: "See you at 7"}, []string{"hi", "See you at 7", "bye"}, 1},
		{"newest of equal", Reaction{Quote: "ok"}, []string{"no", "ok", "ok", "ok"}, 1},
		{"exact beats newer prefix", Reaction{Quote: "ok"}, []string{"ok then", "ok"}, 1},
		{"prefix when no exact", Reaction{Quote: "ok"}, []string{"fine", "ok then", "ok sure"}, 1},
		{"truncated takes newest prefix", Reaction{Quote: "ok", Truncated: true}, []string{"ok then", "ok"}, 0},
		{"curly apostrophe in candidate", Reaction{Quote: "It's fine"}, []string{"It’s fine"}, 0},
		{"curly apostrophe in quote", Reaction{Quote: "It’s fine"}, []string{"It's fine"}, 0},
		{"other apostrophes", Reaction{Quote: "‘a’ ‚b‛ 5′"}, []string{"'a' 'b' 5'"}, 0},
		{"double quotes fold", Reaction{Quote: `he said "hi"`}, []string{"he said “hi”"}, 0},
		{"other double quotes", Reaction{Quote: "„a‟ 5″"}, []string{`"a" 5"`}, 0},
		{"whitespace runs", Reaction{Quote: "see  you\n at\t7"}, []string{"see you at 7"}, 0},
		{"whitespace trimmed", Reaction{Quote: " see you "}, []string{"\tsee you\n"}, 0},
		{"case-sensitive", Reaction{Quote: "See you"}, []string{"see you"}, -1},
		{"no match", Reaction{Quote: "nothing like it"}, []string{"a", "b"}, -1},
		{"quote longer than candidate", Reaction{Quote: "ok then", Truncated: true}, []string{"ok"}, -1},
		{"nil candidates", Reaction{Quote: "x"}, nil, -1},
		{"empty candidates", Reaction{Quote: "x"}, []string{}, -1},
		{"empty candidate strings", Reaction{Quote: "x"}, []string{"", "  "}, -1},
		{"empty quote", Reaction{Quote: ""}, []string{"", "a"}, -1},
		{"blank quote", Reaction{Quote: " \n "}, []string{"", " ", "a"}, -1},
		{"empty truncated quote", Reaction{Quote: "", Truncated: true}, []string{"a"}, -1},
		{"truncated whitespace", Reaction{Quote: "This is a ", Truncated: true}, []string{"This is  a  test"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(tt.r, tt.candidates); got != tt.want {
				t.Errorf("Match(%+v, %q) = %d, want %d", tt.r, tt.candidates, got, tt.want)
			}
		})
	}
}

// End to end: the phone quotes with curly quotes and an apostrophe that the
// XMPP client sent straight.
func TestParseThenMatch(t *testing.T) {
	history := []string{"Great, thanks", "It's fine, don't worry", "It's fine"}
	r, ok := Parse("Laughed at “It’s fine, don’t worry”")
	if !ok {
		t.Fatal("not parsed")
	}
	if i := Match(r, history); i != 1 {
		t.Fatalf("Match = %d, want 1", i)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{" a  b\n\nc ", "a b c"},
		{"‘x’ “y”", `'x' "y"`},
		{"a\u00a0b", "a b"},
	}
	for _, tt := range tests {
		if got := normalize(tt.in); got != tt.want {
			t.Errorf("normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, row := range rows {
		f.Add(row.prefix + "“See you at 7”")
		f.Add(row.prefix + `"cut...`)
	}
	for _, s := range []string{"", "Liked", "Liked “”", "Liked “…", "Reacted badly to “x”", "Reacted 1️⃣ to “x”", "Removed a  from “x”", "Liked “x” y", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, ok := Parse(body)
		if !ok {
			if r != (Reaction{}) {
				t.Fatalf("Parse(%q) = %+v with ok=false", body, r)
			}
			return
		}
		if r.Quote == "" || strings.TrimSpace(r.Quote) == "" {
			t.Fatalf("Parse(%q): empty quote %+v", body, r)
		}
		if r.Emoji == "" {
			t.Fatalf("Parse(%q): empty emoji %+v", body, r)
		}
		if !isEmoji(r.Emoji) {
			t.Fatalf("Parse(%q): emoji %q is not an emoji", body, r.Emoji)
		}
		// A quote always finds the message it was taken from.
		if i := Match(r, []string{r.Quote}); i != 0 {
			t.Fatalf("Parse(%q) = %+v; Match against its own quote = %d", body, r, i)
		}
	})
}
