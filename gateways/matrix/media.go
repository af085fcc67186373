package matrix

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/xmppgw/xmppgw/gateways"
)

// maxMedia bounds an attachment fetched from XMPP for upload.
const maxMedia = 50 << 20

// mediaContent fetches an attachment the user sent (a XEP-0066 URL, as
// their server's HTTP upload serves it), uploads it to the homeserver's
// content repository and returns the message that shows it. The fetch
// goes through the adapter's transport, which refuses private addresses
// unless allow_private_homeservers, like every request the gateway makes
// on a user's behalf.
func (t target) mediaContent(ctx context.Context, md gateways.Media) (*event.MessageEventContent, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, md.URL, nil)
	if err != nil || (req.URL.Scheme != "https" && req.URL.Scheme != "http") {
		return nil, gateways.Reject(gateways.NotAcceptable, "the attachment's URL %q cannot be fetched", md.URL)
	}
	resp, err := t.s.r.a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("matrix: fetching the attachment: %w: %w", gateways.ErrNotConnected, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("matrix: fetching the attachment: %s: %w", resp.Status, gateways.ErrNotConnected)
	case resp.StatusCode != http.StatusOK:
		return nil, gateways.Reject(gateways.ItemNotFound, "the attachment could not be fetched: %s", resp.Status)
	case resp.ContentLength > maxMedia:
		return nil, gateways.Reject(gateways.NotAcceptable, "the attachment is larger than %d MB", maxMedia>>20)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMedia+1))
	if err != nil {
		return nil, fmt.Errorf("matrix: fetching the attachment: %w: %w", gateways.ErrNotConnected, err)
	}
	if len(data) > maxMedia {
		return nil, gateways.Reject(gateways.NotAcceptable, "the attachment is larger than %d MB", maxMedia>>20)
	}
	typ := md.Type
	if typ == "" {
		typ = resp.Header.Get("Content-Type")
	}
	if mt, _, err := mime.ParseMediaType(typ); err == nil {
		typ = mt
	} else {
		typ = http.DetectContentType(data)
	}
	name := path.Base(req.URL.Path)
	if n, err := url.PathUnescape(name); err == nil {
		name = n
	}
	if name == "" || name == "/" || name == "." {
		name = "attachment"
	}
	up, err := t.s.cli.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: data, ContentType: typ, FileName: name})
	if err != nil {
		return nil, classify(err, "uploading the attachment")
	}
	c := &event.MessageEventContent{MsgType: event.MsgFile, Body: name, URL: up.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: typ, Size: len(data)}}
	switch {
	case strings.HasPrefix(typ, "image/"):
		c.MsgType = event.MsgImage
	case strings.HasPrefix(typ, "video/"):
		c.MsgType = event.MsgVideo
	case strings.HasPrefix(typ, "audio/"):
		c.MsgType = event.MsgAudio
	}
	return c, nil
}

// sendMedia sends each attachment of m as a media message, then the text
// unless it is only the attachment's URL (as XMPP clients send it).
func (t target) sendMedia(ctx context.Context, m gateways.Outbound) (gateways.Sent, error) {
	var sent gateways.Sent
	onlyURL := false
	for i, md := range m.Media {
		onlyURL = onlyURL || strings.TrimSpace(m.Body) == md.URL
		c, err := t.mediaContent(ctx, md)
		if err != nil {
			return gateways.Sent{}, err
		}
		ev, err := t.send(ctx, event.EventMessage, c, m.Key, fmt.Sprintf("media\x00%d", i))
		if err != nil {
			return gateways.Sent{}, err
		}
		sent.IDs = append(sent.IDs, string(ev))
	}
	if strings.TrimSpace(m.Body) != "" && !onlyURL {
		ev, err := t.send(ctx, event.EventMessage, text(m.Body), m.Key, "message")
		if err != nil {
			return gateways.Sent{}, err
		}
		sent.IDs = append(sent.IDs, string(ev))
	}
	return sent, nil
}
