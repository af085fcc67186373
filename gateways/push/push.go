package push

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nuid"
	"golang.org/x/time/rate"

	"github.com/xmppgw/xmppgw/bus"
	"github.com/xmppgw/xmppgw/gateways"
	"github.com/xmppgw/xmppgw/internal/metrics"
)

func init() {
	gateways.Register(gateways.Info{
		ID:          "push",
		Type:        "app", // XEP-0357 app servers have no registrar type of their own
		ContactType: "pc",
		Name:        "Push notifications (UnifiedPush, FCM, APNs)",
		// A XEP-0357 app server is a pubsub service of type push.
		ExtraIdentities: []string{"pubsub/push"},
		ExtraFeatures:   []string{"urn:xmpp:push:0", "http://jabber.org/protocol/pubsub#publish"},
		NewConfig:       newConfig,
		New:             New,
	})
}

// Adapter is a XEP-0357 app server.
type Adapter struct {
	name string
	cfg  *Config
	log  *slog.Logger
	m    *metrics.Metrics
	reg  *store // nil when only checking the configuration

	endpoints *http.Client
	fcm       *fcmClient  // nil: FCM not configured
	apns      *apnsClient // nil: APNs not configured

	limits *limiter
}

var (
	_ gateways.Adapter         = (*Adapter)(nil)
	_ gateways.Pusher          = (*Adapter)(nil)
	_ gateways.CommandProvider = (*Adapter)(nil)
	_ gateways.IQProvider      = (*Adapter)(nil)
)

// New constructs the adapter; it connects nowhere.
func New(p gateways.Params) (gateways.Adapter, error) {
	cfg, _ := p.Config.(*Config)
	if cfg == nil {
		cfg = newConfig().(*Config)
	}
	if (cfg.FCM.CredentialsFile != "" && cfg.fcmAccount == nil) || (cfg.APNs.KeyFile != "" && cfg.apnsKey == nil) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		name: p.Name, cfg: cfg, log: log, m: p.Metrics,
		endpoints: endpointClient(cfg.AllowPrivateEndpoints, cfg.RequestTimeout),
		limits:    newLimiter(cfg.DeviceBurst, cfg.DeviceInterval),
	}
	if p.Registrations != nil {
		a.reg = &store{kv: p.Registrations, gw: p.Name}
	}
	if cfg.fcmAccount != nil {
		a.fcm = &fcmClient{cfg: cfg.FCM, sa: cfg.fcmAccount, http: &http.Client{Timeout: cfg.RequestTimeout}}
	}
	if cfg.apnsKey != nil {
		a.apns = &apnsClient{cfg: cfg.APNs, key: cfg.apnsKey, http: apnsHTTP(cfg.RequestTimeout)}
	}
	return a, nil
}

// Start has nothing to connect: push services are reached per request.
func (a *Adapter) Start(context.Context, gateways.Host) error {
	if a.reg == nil {
		return errors.New("push: no registrations bucket")
	}
	return nil
}

// Send refuses chat messages: nobody is reachable at a push gateway.
func (a *Adapter) Send(context.Context, gateways.Outbound) (gateways.Sent, error) {
	return gateways.Sent{}, gateways.Reject(gateways.ServiceUnavailable,
		"this is a push notification service; it carries no messages")
}

// Stop closes idle connections.
func (a *Adapter) Stop(context.Context) error {
	a.endpoints.CloseIdleConnections()
	if a.apns != nil {
		a.apns.http.CloseIdleConnections()
	}
	return nil
}

// Push delivers one notification (the runner calls it; see
// gateways.Pusher).
func (a *Adapter) Push(ctx context.Context, p gateways.Push) error {
	reg, err := a.reg.get(ctx, p.Node)
	if errors.Is(err, errNoNode) {
		// Unregistered, or found gone, since the publish was accepted.
		a.m.Push(a.name, "none", "unregistered")
		return nil
	}
	if err != nil {
		return err
	}
	if reg.User != p.User {
		a.m.Push(a.name, reg.Service, "unregistered") // the node was given to someone else: never
		return nil
	}
	// Only a first attempt counts against the device's allowance: a retry
	// is the same push.
	if p.Attempt <= 1 && !a.limits.allow(p.Node) {
		a.m.Push(a.name, reg.Service, "limited")
		return nil
	}
	n := notification{Node: p.Node, Count: p.Count}
	if reg.Content {
		n.Sender, n.Body = p.Sender, truncate(p.Body, maxBodyBytes)
	}
	switch reg.Service {
	case UnifiedPush:
		err = a.sendUnifiedPush(ctx, reg, n)
	case FCM:
		err = a.sendFCM(ctx, reg, n)
	case APNs:
		err = a.sendAPNs(ctx, reg, n)
	default:
		err = permanent("unknown push service %q", reg.Service)
	}
	switch {
	case err == nil:
		a.m.Push(a.name, reg.Service, "sent")
		return nil
	case errors.Is(err, errGone):
		a.m.Push(a.name, reg.Service, "gone")
		a.log.Info("push service says the device is gone; registration removed", "node", p.Node, "service", reg.Service, "why", err)
		if rerr := a.reg.remove(ctx, p.Node, reg); rerr != nil {
			return rerr // retried: the removal must happen
		}
		return nil
	case errors.Is(err, gateways.ErrPermanent):
		a.m.Push(a.name, reg.Service, "failed")
		return err
	default:
		a.m.Push(a.name, reg.Service, "retried")
		return err
	}
}

// Publishing (XEP-0357 §7): the user's server publishes a notification to
// the device's node with the secret in publish-options.

const (
	nsPubSub  = "http://jabber.org/protocol/pubsub"
	nsPush    = "urn:xmpp:push:0"
	nsSummary = "urn:xmpp:push:summary"
)

type xform struct {
	Type   string `xml:"type,attr"`
	Fields []struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	} `xml:"field"`
}

func (f *xform) value(name string) string {
	if f == nil {
		return ""
	}
	for _, fl := range f.Fields {
		if fl.Var == name && len(fl.Values) > 0 {
			return strings.TrimSpace(fl.Values[0])
		}
	}
	return ""
}

type publishIQ struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
	Publish *struct {
		Node string `xml:"node,attr"`
		Item *struct {
			Notification *struct {
				Form *xform `xml:"jabber:x:data x"`
			} `xml:"urn:xmpp:push:0 notification"`
		} `xml:"item"`
	} `xml:"publish"`
	Options *struct {
		Form *xform `xml:"jabber:x:data x"`
	} `xml:"publish-options"`
}

type publishResult struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
	Publish struct {
		Node string `xml:"node,attr"`
		Item struct {
			ID string `xml:"id,attr"`
		} `xml:"item"`
	} `xml:"publish"`
}

// IQHandlers serves pubsub publish.
func (a *Adapter) IQHandlers() []gateways.IQHandler {
	return []gateways.IQHandler{{Type: "set", Payload: xml.Name{Space: nsPubSub, Local: "pubsub"}, Serve: a.publish}}
}

// publish checks the node and secret and queues the push. Refusals are
// what XEP-0357 and XEP-0060 give a publisher: item-not-found for a node
// that does not exist (never did, unregistered, or removed because its
// push service said the device is gone), forbidden for a wrong secret or
// a publisher that is not the device owner's server. Neither is of type
// wait, so the server counts them and disables push for the device
// (Prosody: after push_max_errors of them).
func (a *Adapter) publish(ctx context.Context, iq gateways.IQ) (gateways.IQAnswer, error) {
	var q publishIQ
	if err := iq.Decode(&q); err != nil {
		return gateways.IQAnswer{}, gateways.Reject(gateways.BadRequest, "the publish could not be read")
	}
	if q.Publish == nil || q.Publish.Node == "" {
		return gateways.IQAnswer{}, gateways.Reject(gateways.FeatureNotImplemented, "this service only takes XEP-0357 publishes")
	}
	node := q.Publish.Node
	reg, err := a.reg.get(ctx, node)
	if errors.Is(err, errNoNode) {
		a.m.Push(a.name, "none", "refused")
		return gateways.IQAnswer{}, gateways.Reject(gateways.ItemNotFound, "no device is registered with this node")
	}
	if err != nil {
		return gateways.IQAnswer{}, err
	}
	var secret string
	if q.Options != nil {
		secret = q.Options.Form.value("secret")
	}
	if !reg.secretMatches(secret) || !publisherServes(iq.From, reg.User) {
		a.m.Push(a.name, reg.Service, "refused")
		return gateways.IQAnswer{}, gateways.Reject(gateways.Forbidden, "the secret does not match this node's, or the publisher is not the user's server")
	}
	if q.Publish.Item == nil || q.Publish.Item.Notification == nil {
		return gateways.IQAnswer{}, gateways.Reject(gateways.BadRequest, "the item holds no notification (urn:xmpp:push:0)")
	}
	summary := q.Publish.Item.Notification.Form
	p := &bus.Push{Node: node}
	if n, err := strconv.Atoi(summary.value("message-count")); err == nil && n > 0 {
		p.Count = n
	}
	if reg.Content {
		// Only a device that asked for content has it stored and sent.
		p.Sender, p.Body = summary.value("last-message-sender"), summary.value("last-message-body")
	}
	a.m.Push(a.name, reg.Service, "accepted")
	var res publishResult
	res.Publish.Node = node
	res.Publish.Item.ID = nuid.Next()
	return gateways.IQAnswer{
		Payload: res,
		Queue:   &bus.Envelope{Kind: bus.KindPush, User: reg.User, Contact: node, Push: p},
		QueueID: "push:" + iq.From + "|" + iq.ID,
	}, nil
}

// maxBodyBytes bounds the text a push carries: push services take 4 KiB
// (RFC 8030's minimum, FCM's and APNs' limits), with room for the rest.
const maxBodyBytes = 1024

// truncate cuts s to at most n bytes at a character boundary, marking the
// cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// publisherServes reports whether from, the publisher, is the server of
// user (its domain, as Prosody sends) or user's bare JID (as ejabberd
// sends).
func publisherServes(from, user string) bool {
	from = strings.ToLower(from)
	_, domain, _ := strings.Cut(strings.ToLower(user), "@")
	return from == domain || from == strings.ToLower(user)
}

// limiter is the per-device allowance: burst pushes, then one per
// interval. Idle devices are forgotten.
type limiter struct {
	mu       sync.Mutex
	burst    int
	interval time.Duration
	m        map[string]*rate.Limiter
	swept    time.Time
}

func newLimiter(burst int, interval time.Duration) *limiter {
	return &limiter{burst: burst, interval: interval, m: map[string]*rate.Limiter{}}
}

func (l *limiter) allow(node string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.swept) > time.Duration(l.burst)*l.interval {
		// A limiter refilled to its burst is the same as none.
		for k, rl := range l.m {
			if rl.TokensAt(now) >= float64(l.burst) {
				delete(l.m, k)
			}
		}
		l.swept = now
	}
	rl, ok := l.m[node]
	if !ok {
		rl = rate.NewLimiter(rate.Every(l.interval), l.burst)
		l.m[node] = rl
	}
	return rl.AllowN(now, 1)
}

// Errors for the commands.
func refusal(cond gateways.Condition, format string, args ...any) error {
	return gateways.Reject(cond, format, args...)
}
