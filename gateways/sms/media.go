package sms

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// mediaTTL is how long a media link handed to a user keeps working.
const mediaTTL = 7 * 24 * time.Hour

type mediaRecord struct {
	URL     string    `json:"url"`
	Type    string    `json:"type"`
	Expires time.Time `json:"exp"`
}

// mediaLink stores a provider's media URL behind a random token and
// returns the public URL users fetch it from. The providers' URLs need
// the gateway's credentials (or expire), so users never see them. The
// record is kept in the provider's namespace: the token says whose
// credentials fetch it.
func (g *Gateway) mediaLink(ctx context.Context, p Provider, providerURL, ctype string) (string, error) {
	b := make([]byte, 16) // 128 bits
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	rec, _ := json.Marshal(mediaRecord{URL: providerURL, Type: ctype, Expires: time.Now().Add(mediaTTL)})
	if _, err := g.msgs.Put(ctx, g.key(p, "media", token), rec); err != nil {
		return "", err
	}
	// An extension helps clients decide to show it inline.
	name := token
	if exts, _ := mime.ExtensionsByType(ctype); len(exts) > 0 {
		name += exts[len(exts)-1]
	}
	return g.publicURL + g.base(p) + "/media/" + name, nil
}

// base is where p's webhooks and media links are served: the adapter's
// mount, and below it /<provider ID> for a provider that is not the
// adapter's own (a mixed gateway).
func (g *Gateway) base(p Provider) string {
	if p.ID() == g.id {
		return g.mount
	}
	return g.mount + "/" + p.ID()
}

// HTTPHandler serves every provider's webhooks and the media links given
// to users (GET <base>/media/{token}: unguessable, expiring).
func (g *Gateway) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	for _, a := range g.accounts {
		p := a.Provider
		base := g.base(p)
		mux.Handle(base+"/", p.Handler())
		mux.HandleFunc("GET "+base+"/media/{token}", func(w http.ResponseWriter, r *http.Request) { g.serveMedia(w, r, p) })
	}
	return mux
}

// serveMedia proxies a stored media link to the provider with its
// credentials.
func (g *Gateway) serveMedia(w http.ResponseWriter, r *http.Request, p Provider) {
	token, _, _ := strings.Cut(r.PathValue("token"), ".")
	e, err := g.msgs.Get(r.Context(), g.key(p, "media", token))
	if err != nil {
		http.Error(w, "no such media, or the link expired", http.StatusNotFound)
		return
	}
	var rec mediaRecord
	if json.Unmarshal(e.Value(), &rec) != nil || time.Now().After(rec.Expires) {
		http.Error(w, "no such media, or the link expired", http.StatusNotFound)
		return
	}
	resp, err := p.Fetch(r.Context(), rec.URL)
	if err != nil {
		http.Error(w, "could not fetch the media from the provider", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		http.Error(w, fmt.Sprintf("the provider answered %d for this media", resp.StatusCode), http.StatusBadGateway)
		return
	}
	ctype := resp.Header.Get("Content-Type")
	if ctype == "" {
		ctype = rec.Type
	}
	w.Header().Set("Content-Type", ctype)
	// Served from the gateway's own origin but chosen by whoever sent the
	// MMS: never let it run as a page there.
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	if major, _, _ := strings.Cut(ctype, "/"); major != "image" && major != "audio" && major != "video" {
		w.Header().Set("Content-Disposition", "attachment")
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		w.Header().Set("Content-Length", cl)
	}
	w.Header().Set("Cache-Control", "private, max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.Copy(w, resp.Body)
}
