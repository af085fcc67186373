package twilio

import (
	"context"
	"fmt"
	"net/url"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/xmppgw/xmppgw/gateways/sms"
)

// clockSkew is how far Twilio's clock and ours may disagree when matching a
// message Twilio lists to an attempt of ours.
const clockSkew = 30 * time.Second

// A lookup reads the conversation's messages at Twilio newest first, a
// page at a time, until it reaches messages created before the attempt
// began (most lookups end on the first page), and at most maxLookupPages.
const (
	lookupPageSize = 200
	maxLookupPages = 25
)

// Find looks for the message at Twilio: same From and To, same body,
// created no earlier than the attempt began, and not known to be another
// stanza's message.
//
// The list is not filtered by DateSent: Twilio leaves date_sent null while
// a message is queued (behind a number's send rate, for minutes under
// load), and a DateSent filter leaves such a message out — the one most
// likely to be sought. The list comes newest first by date_created, so the
// pages are read until one reaches back before the attempt.
func (t *Provider) Find(ctx context.Context, a sms.Attempt) (string, error) {
	since := a.Started.Add(-clockSkew)
	p := &openapi.ListMessageParams{}
	p.SetFrom(a.From)
	p.SetTo(a.To)
	p.SetPageSize(lookupPageSize)
	token, number := "", ""
	for range maxLookupPages {
		page, err := withContext(ctx, func() (*openapi.ListMessageResponse, error) { return t.api.PageMessage(p, token, number) })
		if err != nil {
			return "", err
		}
		older := false
		for _, msg := range page.Messages {
			if msg.DateCreated == nil {
				continue
			}
			created, err := time.Parse(time.RFC1123Z, *msg.DateCreated)
			if err != nil {
				continue
			}
			if created.Before(since) {
				older = true
				continue
			}
			if msg.Sid == nil || msg.Body == nil || *msg.Body != a.Body {
				continue
			}
			if a.Other != nil && a.Other(ctx, *msg.Sid) {
				continue // an identical text of another message
			}
			return *msg.Sid, nil
		}
		if older || page.NextPageUri == nil || *page.NextPageUri == "" {
			return "", nil
		}
		next, err := url.Parse(*page.NextPageUri)
		if err != nil {
			return "", fmt.Errorf("next page %q: %w", *page.NextPageUri, err)
		}
		token, number = next.Query().Get("PageToken"), next.Query().Get("Page")
	}
	// Not found, and not all read: sending again could be a second SMS.
	return "", fmt.Errorf("more than %d messages from %s to %s since the attempt began; not sending again without knowing",
		maxLookupPages*lookupPageSize, a.From, a.To)
}
