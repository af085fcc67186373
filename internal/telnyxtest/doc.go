// Package telnyxtest fakes the part of Telnyx the gateway talks to, for
// tests: the Messaging API v2 (POST /v2/messages, POST
// /v2/messages/group_mms, inbound media behind the API key) and the
// webhooks Telnyx sends (message.received, message.sent,
// message.finalized), signed with Ed25519 the way Telnyx signs them:
// telnyx-signature-ed25519 = base64(Ed25519(<telnyx-timestamp>|<raw body>)),
// with a key pair of the fake's own whose public half is PublicKey.
//
// Like twiliotest, it copies Telnyx's observable behaviour rather than a
// convenient subset: Bearer authentication answered 401 with error 10009,
// error bodies as Telnyx writes them ({"errors": [{"code", "title",
// "detail", "source": {"pointer"}}]}, codes as strings), validation of
// from, to, text/media_urls and messaging_profile_id, the message resource
// with to[].status, and group MMS limits (US/Canadian numbers, at most 8
// recipients). Its tests drive it with the product's own client (package
// telnyx).
//
//	tx := telnyxtest.Start(t, apiKey)
//	// configure the gateway with tx.URL as api_url, tx.PublicKey as public_key
//	tx.FailNext(telnyxtest.Failure{Status: 429, Code: "10011"})
//	msgs := tx.WaitMessages(t, 1, 5*time.Second)
//	tx.PostWebhook(t, gatewayURL+"/telnyx/sms/webhook", tx.Finalized(msgs[0], "delivered", ""))
//
// SetSendWebhooks makes the fake post message.sent to each accepted
// message's webhook_url, as Telnyx does once it hands a message to the
// carrier.
//
// Known gaps: no message gets further than "queued" by itself (drive
// delivery with Finalized), the from number is not checked against the
// profile's numbers, there is no rate limiting of its own (script 429s
// with FailNext), and no detail-records search.
package telnyxtest
