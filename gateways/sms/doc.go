// Package sms is the SMS/MMS gateway Twilio and Telnyx share: numbers
// assigned to users in the shared KV store (several providers' numbers in
// one domain, each sending and receiving through its own), per-number send
// rates, recipient checks, segment counts, attempt records that settle an
// ambiguous outcome without a second SMS, expiring media links, delivery
// reports, corrections, replies and phones' reactions. A provider (package
// twilio, package telnyx) is a thin Provider: a client that sends, looks up
// or settles an ambiguous send, fetches media, and a webhook handler that
// verifies a request and hands what it says to the Gateway (Receive,
// Status).
//
// # What a phone can carry
//
// SMS is text (and MMS media) and nothing more, so the gateway declares
// (gateways.FeaturesOf) corrections and replies only, and renders both as
// text a phone shows. Reactions, retractions, read markers and typing are
// not declared: a phone has no such thing, and the component answers a
// reaction or a retraction with feature-not-implemented and drops markers
// and chat states.
//
// A correction (XEP-0308) is a new SMS with the corrected text after
// correction_prefix (default "* "), e.g. "* see you at 8"; the phone keeps
// the message corrected as it was.
//
// A reply (XEP-0461) is the user's text under one line quoting the message
// replied to, as the user's client quoted it:
//
//	> See you at 7 at the usual place
//	Make it 8
//
// The quote is put on one line (line breaks and runs of spaces become one
// space) and shortened to at most 60 characters, cut after a word when one
// ends among its last 20, and ended with "…" when cut; in a message that is
// otherwise GSM-7 the cut is marked "..." instead, since "…" alone would
// switch the whole SMS to UCS-2 and more than double its segments. Without
// a quote (a client that sent none, of a message the gateway has no text
// of) the reply is the user's text alone. max_segments counts the SMS as
// sent, quote or correction prefix included.
//
// Inbound, a phone that reacts to a message over SMS (iOS Tapbacks, Android
// "Reacted 👍 to …") sends a text such as Liked “See you at 7”. When such a
// text (package tapback's phrase table) quotes one of the user's recent
// messages to that contact, it reaches the user as a XEP-0444 reaction to
// that message, with the text as fallback; otherwise, and always for an
// MMS, it is an ordinary message. To recognise them the gateway asks the
// runner to remember the text of each SMS it sends (gateways.Sent.Text),
// as the user wrote it; a reaction to a correction or a reply is
// recognised by the text after correction_prefix or after the quote line.
// When a phone quotes a reply on one line, or only the start of its quote
// line, its reaction arrives as text.
package sms
