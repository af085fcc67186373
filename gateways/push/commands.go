package push

import (
	"context"
	"errors"
	"strings"

	"github.com/xmppgw/xmppgw/gateways"
)

// Device registration: XEP-0050 commands, as Conversations' app server
// (p2) defines them for FCM, with equivalents for APNs and UnifiedPush.
// Each answers the fields node and secret, which the client gives its
// server in XEP-0357 <enable/>. A device that registers again keeps its
// node and gets a new secret.

const maxTokenLength = 4096

var contentField = gateways.Field{
	Var: "include-content", Type: "boolean",
	Label: "Include the sender and text of messages",
	Desc:  "Off by default: the push only says that something is new. On, the sender and text your server puts in its notification pass through the push service (Google, Apple or your distributor) in the clear.",
}

// Commands lists the registration commands of the configured services.
func (a *Adapter) Commands() []gateways.Command {
	cmds := []gateways.Command{{
		Node: "register-push-unifiedpush", Name: "Register a device for UnifiedPush",
		Form: &gateways.Form{
			Title:        "UnifiedPush",
			Instructions: "The endpoint URL your UnifiedPush distributor gave this app.",
			Fields: []gateways.Field{
				{Var: "endpoint", Type: "text-single", Label: "Endpoint URL", Required: true},
				{Var: "p256dh", Type: "text-single", Label: "Web Push public key (base64url, optional)",
					Desc: "With auth, the app's RFC 8291 keys: pushes are then encrypted for the app, unreadable by the distributor."},
				{Var: "auth", Type: "text-single", Label: "Web Push auth secret (base64url, optional)"},
				contentField,
			},
		},
		Execute: a.registerUnifiedPush,
	}}
	if a.fcm != nil {
		cmds = append(cmds, gateways.Command{
			Node: "register-push-fcm", Name: "Register a device for Firebase Cloud Messaging",
			Form: &gateways.Form{Title: "FCM", Fields: []gateways.Field{
				{Var: "token", Type: "text-single", Label: "FCM registration token", Required: true},
				{Var: "android-id", Type: "text-single", Label: "Device id", Required: true},
				contentField,
			}},
			Execute: a.registerToken(FCM, "android-id"),
		})
	}
	if a.apns != nil {
		cmds = append(cmds, gateways.Command{
			Node: "register-push-apns", Name: "Register a device for Apple Push Notifications",
			Form: &gateways.Form{Title: "APNs", Fields: []gateways.Field{
				{Var: "token", Type: "text-single", Label: "APNs device token (hex)", Required: true},
				{Var: "device-id", Type: "text-single", Label: "Device id (default: the token)"},
				contentField,
			}},
			Execute: a.registerToken(APNs, "device-id"),
		})
	}
	return append(cmds, gateways.Command{
		Node: "unregister-push", Name: "Unregister a device",
		Form: &gateways.Form{Title: "Unregister", Fields: []gateways.Field{
			{Var: "node", Type: "text-single", Label: "The device's node", Required: true},
		}},
		Execute: a.unregister,
	})
}

func first(values map[string][]string, name string) string {
	if v := values[name]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

func wantsContent(values map[string][]string) bool {
	switch first(values, "include-content") {
	case "1", "true":
		return true
	}
	return false
}

func (a *Adapter) registerUnifiedPush(ctx context.Context, user string, values map[string][]string) (gateways.CommandResult, error) {
	endpoint := first(values, "endpoint")
	u, err := checkEndpoint(ctx, endpoint, a.cfg.AllowPrivateEndpoints)
	if err != nil {
		return gateways.CommandResult{}, refusal(gateways.NotAcceptable, "%v", err)
	}
	r := registration{User: user, Service: UnifiedPush, Endpoint: u.String(), Device: u.String(), Content: wantsContent(values)}
	r.P256DH, r.Auth = first(values, "p256dh"), first(values, "auth")
	if r.P256DH != "" || r.Auth != "" {
		if _, err := parseWebPushKeys(r.P256DH, r.Auth); err != nil {
			return gateways.CommandResult{}, refusal(gateways.NotAcceptable, "%v (give both p256dh and auth, or neither)", err)
		}
	}
	return a.register(ctx, r)
}

func (a *Adapter) registerToken(service, deviceField string) func(context.Context, string, map[string][]string) (gateways.CommandResult, error) {
	return func(ctx context.Context, user string, values map[string][]string) (gateways.CommandResult, error) {
		token, device := first(values, "token"), first(values, deviceField)
		if len(token) > maxTokenLength || strings.ContainsAny(token, " \t\r\n/") {
			return gateways.CommandResult{}, refusal(gateways.NotAcceptable, "the token is not a device token")
		}
		if service == APNs {
			token = strings.ToLower(token)
			for _, c := range token {
				if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
					return gateways.CommandResult{}, refusal(gateways.NotAcceptable, "an APNs device token is hexadecimal")
				}
			}
		}
		if device == "" {
			device = token
		}
		if len(device) > 256 {
			return gateways.CommandResult{}, refusal(gateways.NotAcceptable, "the device id is longer than 256 characters")
		}
		return a.register(ctx, registration{User: user, Service: service, Token: token, Device: device, Content: wantsContent(values)})
	}
}

func (a *Adapter) register(ctx context.Context, r registration) (gateways.CommandResult, error) {
	node, secret, err := a.reg.register(ctx, r, a.cfg.MaxDevicesPerUser)
	if errors.Is(err, errTooMany) {
		return gateways.CommandResult{}, refusal(gateways.ResourceConstraint,
			"you have %d devices registered, the most this gateway allows; unregister one first", a.cfg.MaxDevicesPerUser)
	}
	if err != nil {
		return gateways.CommandResult{}, err
	}
	a.log.Info("push device registered", "user", r.User, "service", r.Service, "node", node, "content", r.Content)
	return gateways.CommandResult{
		Note:  "Registered. Enable push notifications on your server with this node and secret (XEP-0357).",
		Title: "Push registration",
		Fields: []gateways.Field{
			{Var: "node", Type: "text-single", Label: "Node", Values: []string{node}},
			{Var: "secret", Type: "text-private", Label: "Secret", Values: []string{secret}},
		},
	}, nil
}

func (a *Adapter) unregister(ctx context.Context, user string, values map[string][]string) (gateways.CommandResult, error) {
	node := first(values, "node")
	reg, err := a.reg.get(ctx, node)
	if errors.Is(err, errNoNode) || (err == nil && reg.User != user) {
		return gateways.CommandResult{}, refusal(gateways.ItemNotFound, "you have no device with the node %q", node)
	}
	if err != nil {
		return gateways.CommandResult{}, err
	}
	if err := a.reg.remove(ctx, node, reg); err != nil {
		return gateways.CommandResult{}, err
	}
	a.log.Info("push device unregistered", "user", user, "node", node)
	return gateways.CommandResult{Note: "Unregistered; your server's next notification for it will be refused."}, nil
}
