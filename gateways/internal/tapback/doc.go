// Package tapback recognises the plain-text rendering of a reaction that a
// phone sends over SMS, and finds the message of the conversation it refers
// to, so that a gateway can turn it into a XEP-0444 reaction.
//
// When an iPhone user reacts to a message ("Tapback") in a conversation with a
// recipient that is not on iMessage, Messages sends an ordinary SMS that
// describes the reaction and quotes the message, e.g.
//
//	Liked “See you at 7”
//
// Android messaging apps (Google Messages, Samsung Messages) do the same for
// recipients without RCS. Parse recognises such a text; Match picks, among the
// recent messages of the conversation (newest first), the one the quote
// refers to. A caller should treat the body as an ordinary message whenever
// Parse returns ok=false or Match returns -1: a person may type any of these
// phrases, and the quoted message may be older than what the caller remembers.
//
// A XEP-0444 <reactions/> element carries the sender's whole set of
// reactions to a message, so for a Reaction with Removed set the caller sends
// the set it knows minus Emoji; this package keeps no state.
//
// # Phrase table (English only)
//
// The table is data (see phrases): adding a language is adding rows. Texts in
// any other language are not recognised and arrive as ordinary text.
//
//	Liked “T”                         → 👍
//	Loved “T”                         → ❤️
//	Laughed at “T”                    → 😂
//	Emphasized “T” (or Emphasised)    → ‼️
//	Questioned “T”                    → ❓
//	Disliked “T”                      → 👎
//	Reacted <emoji> to “T”            → <emoji>
//	Removed a like from “T”           → 👍, removed
//	Removed a heart from “T”          → ❤️, removed
//	Removed a laugh from “T”          → 😂, removed
//	Removed an exclamation from “T”   → ‼️, removed
//	Removed a question mark from “T”  → ❓, removed
//	Removed a dislike from “T”        → 👎, removed
//	Removed <emoji> from “T”          → <emoji>, removed
//	Removed a <emoji> from “T”        → <emoji>, removed
//
// Where these come from: neither Apple nor Google publishes these strings as a
// format; the table is written from the author's knowledge of the phones'
// behaviour, not from a specification, and has not been checked here against
// real phones. Confidence differs by row:
//
//   - The six "Liked/Loved/Laughed at/Emphasized/Questioned/Disliked" forms
//     are the long-standing, widely reported iOS behaviour (US English
//     locale). "Emphasised" is assumed for the British English locale.
//   - The "Removed a like from …" family is observed iOS behaviour, less
//     widely reported than the add forms.
//   - "Reacted <emoji> to …" is reported for iOS 18's arbitrary-emoji
//     Tapbacks and for Google Messages; the exact wording on every app and
//     version is assumed. "Removed <emoji> from …" and
//     "Removed a <emoji> from …" are assumed removal counterparts.
//   - Samsung Messages is assumed to use the same English wording.
//
// The quote is in curly (“…”) or straight ("…") quotes. A phone shortens a
// long quote and ends it with an ellipsis ("…" or "..."), sometimes without
// the closing quote; Parse then sets Truncated and Match compares by prefix.
// A message that itself ended with "..." is therefore also reported as
// truncated, which Match handles the same way. The closing quote may only be
// missing after an ellipsis, and nothing may follow it.
//
// For items without text (photos, videos, stickers, …) iOS sends "Liked an
// image", "Loved a photo", "Laughed at a movie" and the like. Those carry no
// quote, so there is nothing to match: Parse reports ok=false and they arrive
// as ordinary text.
//
// "Reacted X to" is accepted only when X is made of emoji code points
// (pictographic ranges, U+FE0F, U+200D, skin-tone modifiers, regional
// indicators, keycap sequences, tag characters), so "Reacted badly to “news”"
// stays ordinary text.
package tapback
