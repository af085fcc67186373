package matrix

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/xmppgw/xmppgw/gateways"
)

// maxMedia bounds an attachment fetched from XMPP for upload.
const maxMedia = 50 << 20

// mediaContent fetches an attachment the user sent (a XEP-0066 URL, as
// their server's HTTP upload serves it), uploads it to the homeserver's
// content repository (encrypted first when the room is, encmedia.go) and
// returns the message that shows it. The fetch
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
	c := &event.MessageEventContent{MsgType: event.MsgFile, Body: name, Info: &event.FileInfo{MimeType: typ, Size: len(data)}}
	file, err := t.encryptAttachment(ctx, data)
	if err != nil {
		return nil, err
	}
	upload := mautrix.ReqUploadMedia{ContentBytes: data, ContentType: typ, FileName: name}
	if file != nil {
		// The homeserver holds only ciphertext: neither the type nor the
		// name travel outside the encrypted event.
		upload = mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "application/octet-stream"}
	}
	up, err := t.s.cli.UploadMedia(ctx, upload)
	if err != nil {
		return nil, classify(err, "uploading the attachment")
	}
	if file != nil {
		c.File = &event.EncryptedFileInfo{EncryptedFile: *file, URL: up.ContentURI.CUString()}
	} else {
		c.URL = up.ContentURI.CUString()
	}
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

// mediaTTL is how long a media link handed to a user keeps working.
const mediaTTL = 7 * 24 * time.Hour

// mediaRecord is what a media link stands for: whose login fetches which
// content.
type mediaRecord struct {
	User    string    `json:"user"`
	Server  string    `json:"server"`
	MediaID string    `json:"media_id"`
	Type    string    `json:"type,omitempty"`
	Expires time.Time `json:"exp"`
	// File is an encrypted attachment's key, IV and hash, to decrypt it
	// with as it is served: kept here in the messages bucket, never in
	// the link, never logged. Size is its length, checked on arrival.
	File *attachment.EncryptedFile `json:"file,omitempty"`
	Size int64                     `json:"size,omitempty"`
}

func (a *Adapter) mediaKey(token string) string { return a.name + ".media." + token }

// mediaLink stores a content URI behind an unguessable token and returns
// the gateway's URL for it. Homeservers may require a login to download
// media (authenticated media); the link fetches it with the user's.
// file, for an attachment of an encrypted room, is what decrypts it
// (encmedia.go).
func (a *Adapter) mediaLink(ctx context.Context, user string, uri id.ContentURI, typ string, file *attachment.EncryptedFile, size int64) (string, error) {
	b := make([]byte, 16) // 128 bits
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	rec, _ := json.Marshal(mediaRecord{User: user, Server: uri.Homeserver, MediaID: uri.FileID, Type: typ,
		Expires: time.Now().Add(mediaTTL), File: file, Size: size})
	if _, err := a.msgs.Put(ctx, a.mediaKey(token), rec); err != nil {
		return "", fmt.Errorf("matrix: messages: %w", err)
	}
	name := token
	if exts, _ := mime.ExtensionsByType(typ); len(exts) > 0 {
		name += exts[len(exts)-1]
	}
	return a.publicURL + a.mount + "/media/" + name, nil
}

// HTTPHandler serves the media links (GET /matrix/<name>/media/{token}),
// nil without http.public_url: media links then point at the homeserver.
func (a *Adapter) HTTPHandler() http.Handler {
	if a.publicURL == "" || a.msgs == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+a.mount+"/media/{token}", a.serveMedia)
	return mux
}

// serveMedia fetches a linked medium from the homeserver with the login
// of the user it was given to, and serves it (decrypted as it passes,
// for an attachment of an encrypted room).
func (a *Adapter) serveMedia(w http.ResponseWriter, r *http.Request) {
	const gone = "no such media, or the link expired"
	token, _, _ := strings.Cut(r.PathValue("token"), ".")
	e, err := a.msgs.Get(r.Context(), a.mediaKey(token))
	if err != nil {
		http.Error(w, gone, http.StatusNotFound)
		return
	}
	var rec mediaRecord
	if json.Unmarshal(e.Value(), &rec) != nil || time.Now().After(rec.Expires) {
		http.Error(w, gone, http.StatusNotFound)
		return
	}
	acc, ok, err := a.loadAccount(r.Context(), rec.User)
	if err != nil || !ok {
		http.Error(w, gone, http.StatusNotFound)
		return
	}
	resp, err := a.fetchMedia(r.Context(), acc, rec.Server, rec.MediaID)
	switch {
	case errors.Is(err, errNoMedia):
		http.Error(w, gone, http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if rec.File != nil {
		serveDecrypted(w, resp, rec)
		return
	}
	typ := resp.Header.Get("Content-Type")
	if typ == "" {
		typ = rec.Type
	}
	if typ != "" {
		w.Header().Set("Content-Type", typ)
	}
	if resp.ContentLength >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = io.Copy(w, resp.Body)
}

// errNoMedia: the homeserver has no such medium.
var errNoMedia = errors.New("the homeserver has no such media")

// fetchMedia downloads a medium from acc's homeserver with acc's login:
// the authenticated endpoint first, the older unauthenticated one for
// homeservers without it. The response is a 200; the caller closes it.
// Errors say what happened without the login.
func (a *Adapter) fetchMedia(ctx context.Context, acc account, server, mediaID string) (*http.Response, error) {
	base := strings.TrimSuffix(acc.Homeserver, "/")
	rel := url.PathEscape(server) + "/" + url.PathEscape(mediaID)
	for _, u := range []string{base + "/_matrix/client/v1/media/download/" + rel, base + "/_matrix/media/v3/download/" + rel} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, errNoMedia
		}
		req.Header.Set("Authorization", "Bearer "+acc.AccessToken)
		resp, err := a.http.Do(req)
		if err != nil {
			return nil, errors.New("could not fetch the media from the homeserver")
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return resp, nil
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest:
			resp.Body.Close() // perhaps only the older endpoint: try it
		default:
			resp.Body.Close()
			return nil, errors.New("the homeserver refused the media: " + resp.Status)
		}
	}
	return nil, errNoMedia
}
