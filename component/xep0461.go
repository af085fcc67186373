package component

import "strings"

// XEP-0461 Message Replies. Outbound, with replies declared, <reply id='X'/>
// becomes message.reply_to {id: X, quote}: the quote is the part of the
// body the client marked as the reply's fallback (XEP-0428), without its
// "> " markers; the body keeps what the user wrote. Without replies the
// quote is dropped and the user's text goes alone. Inbound, a reply is
// written with <reply/> and, when the network quoted the message, the
// quote as a marked fallback for clients without replies.

func init() {
	register(nsReply, entContact|entRoom, func(c *Component) bool { return c.o.Features.Replies })
}

type replyIn struct {
	ID string `xml:"id,attr"`
	To string `xml:"to,attr"`
}

// replyQuote returns the text of body that fbs mark as the reply's
// fallback, as plain text: "> " removed from each line, trimmed.
func replyQuote(body string, fbs []fallbackIn) string {
	runes := []rune(body)
	var b strings.Builder
	for _, fb := range fbs {
		if fb.For != nsReply {
			continue
		}
		for _, r := range fb.Bodies {
			start, end := 0, len(runes)
			if r.Start != nil {
				start = *r.Start
			}
			if r.End != nil {
				end = *r.End
			}
			start, end = max(0, min(start, len(runes))), max(0, min(end, len(runes)))
			if start < end {
				b.WriteString(string(runes[start:end]))
			}
		}
	}
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		l = strings.TrimPrefix(l, ">")
		l = strings.TrimPrefix(l, " ")
		lines = append(lines, l)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// quoted renders quote as a reply fallback: each line marked "> ",
// followed by a newline. It returns the text and its length in code points.
func quoted(quote string) (string, int) {
	if quote == "" {
		return "", 0
	}
	var b strings.Builder
	for _, l := range strings.Split(quote, "\n") {
		b.WriteString("> ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	s := b.String()
	return s, len([]rune(s))
}
