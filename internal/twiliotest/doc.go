// Package twiliotest fakes the part of Twilio the gateway talks to, for
// tests: the Messages REST API (create, list, fetch, inbound media) and the
// webhooks Twilio sends (incoming messages, status callbacks, signed with
// X-Twilio-Signature).
//
// Twilio is the one boundary we cannot run here, so the fake copies its
// observable behaviour rather than a convenient subset: basic auth with
// 401/20003, Twilio's JSON error bodies and codes, its validation order and
// messages, the Message resource exactly as twilio-go decodes it (strings
// for counts, RFC 1123 dates, nulls where Twilio has nulls), pages newest
// first, and segment counts as billed. The tests in this package hold it to
// that by driving it with the real twilio-go client.
//
//	tw := twiliotest.Start(t, accountSID, authToken)
//	// Point the product's HTTP client at tw.URL (twilio-go has no base-URL
//	// setting: use a RoundTripper that rewrites scheme and host).
//	tw.FailNext(twiliotest.Failure{Status: 429, Code: 20429})
//	...
//	msgs := tw.WaitMessages(t, 1, 5*time.Second)
//	status, _ := tw.PostWebhook(t, gatewayURL+"/twilio/status",
//		tw.StatusCallback(msgs[0], "delivered", 0))
//
// Create calls are handled in this order: SetLatency's delay, auth, the
// SetResponder hook, then the FailNext queue, then Twilio's validation.
// Scripted failures therefore pre-empt validation, as a rate limit would.
//
// Messages leave a queue per sending number (or Messaging Service) at
// SetSendRate's rate (DefaultSendRate, a long code's 1 per second): until
// then a message is "queued" ("accepted" through a service) with date_sent
// null, and the DateSent filters of the list do not match it; afterwards
// it is "sent" with date_sent set. HoldSending and ReleaseSending keep
// messages queued for as long as a test needs.
//
// Known gaps: the From number is not checked against owned numbers (21606),
// no message gets further than "sent" (drive delivery with StatusCallback),
// a message sent through a Messaging Service keeps from null, media URLs serve the bytes themselves (Twilio may instead redirect to its
// media CDN), and there is no Media list resource. A request with neither
// Body nor MediaUrl gets 21619, what Twilio answers today (older answers
// were 21602 "Message body is required.").
//
// A Server is safe for concurrent use; Listen and Close run one outside a
// test.
package twiliotest
