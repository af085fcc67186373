package component

import "strings"

// XEP-0106 JID escaping, done here because mellium v0.22's jid.Unescape
// turns "\20" into 0xA0 instead of a space. Only these ten sequences exist;
// a backslash followed by anything else is an ordinary character.
var (
	escaper = strings.NewReplacer(
		`\`, `\5c`, " ", `\20`, `"`, `\22`, "&", `\26`, "'", `\27`,
		"/", `\2f`, ":", `\3a`, "<", `\3c`, ">", `\3e`, "@", `\40`)
	unescaper = strings.NewReplacer(
		`\20`, " ", `\22`, `"`, `\26`, "&", `\27`, "'", `\2f`, "/",
		`\3a`, ":", `\3c`, "<", `\3e`, ">", `\40`, "@", `\5c`, `\`)
)

// escapeLocal maps a network address to a JID localpart (XEP-0106 §4.2).
func escapeLocal(s string) string { return escaper.Replace(s) }

// unescapeLocal maps a contact's localpart back to the network address.
func unescapeLocal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return unescaper.Replace(s)
}
