package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"

	"github.com/xmppgw/xmppgw/bus"
)

// Commands and IQs an adapter supplies (Options.Commands,
// Options.IQHandlers). The component serves them with the same rules as
// its own: only users of allowed_domains (and admins) reach them, an admin
// command is listed to and run by admins only, they run off the reader,
// and an error with a stanza condition (gateways.Error) becomes that
// stanza error; any other error is logged and answered
// internal-server-error.

// Command is an XEP-0050 ad-hoc command on the gateway's domain.
type Command struct {
	Node  string // unique among the gateway's commands
	Name  string // shown by clients
	Admin bool   // listed to and run by the gateway's admins only
	// Form, when set, is handed out first and Execute receives what the
	// user submitted (a client may also send the filled form with its
	// first request). Nil: the command runs at once.
	Form *CommandForm
	// Execute runs the command for user (a bare JID) with the submitted
	// values by field var. Required fields are checked before it is
	// called.
	Execute func(ctx context.Context, user string, values map[string][]string) (CommandResult, error)
}

// CommandForm is an XEP-0004 form of type "form".
type CommandForm struct {
	Title        string
	Instructions string
	Fields       []CommandField
}

// CommandField is one XEP-0004 field.
type CommandField struct {
	Var, Type, Label, Desc string
	Required               bool
	Values                 []string
}

// CommandResult is what a completed command answers: a note and,
// when Fields is not empty, a form of type "result".
type CommandResult struct {
	Note   string
	Title  string
	Fields []CommandField
}

// IQHandler serves IQs addressed to the gateway's domain (not to a
// contact) whose payload is Payload, of type Type ("get" or "set").
type IQHandler struct {
	Type    string
	Payload xml.Name
	Serve   func(ctx context.Context, iq IQ) (IQAnswer, error)
}

// IQ is a request for an IQHandler.
type IQ struct {
	ID, From, To, Type string
	// Decode decodes the payload element into v (encoding/xml).
	Decode func(v any) error
}

// IQAnswer is an IQHandler's answer.
type IQAnswer struct {
	// Payload, when not nil, is the result's child (encoding/xml).
	Payload any
	// Queue, when set, is stored on the gateway's outbound stream before
	// the result is sent, for the runner to hand to the adapter; a failure
	// to store it answers the IQ with a wait error instead. The component
	// sets its id, gateway and time. QueueID deduplicates (Nats-Msg-Id).
	Queue   *bus.Envelope
	QueueID string
}

// adapterCommands turns the adapter's commands into the component's.
func adapterCommands(cmds []Command) ([]adhocCommand, error) {
	var out []adhocCommand
	seen := map[string]bool{}
	for _, node := range builtinNodes {
		seen[node] = true
	}
	for _, cmd := range cmds {
		if cmd.Node == "" || cmd.Execute == nil {
			return nil, errors.New("component: an adapter command needs a node and an Execute function")
		}
		if seen[cmd.Node] {
			return nil, fmt.Errorf("component: command %q defined twice", cmd.Node)
		}
		seen[cmd.Node] = true
		ac := adhocCommand{node: cmd.Node, name: cmd.Name, admin: cmd.Admin, run: runAdapterCommand(cmd)}
		if cmd.Form != nil {
			f := cmd.Form
			ac.form = func() *dataForm {
				df := &dataForm{Type: "form", Title: f.Title, Fields: formFields(f.Fields)}
				if f.Instructions != "" {
					df.Instructions = []string{f.Instructions}
				}
				return df
			}
		}
		out = append(out, ac)
	}
	return out, nil
}

func formFields(fs []CommandField) []formField {
	out := make([]formField, 0, len(fs))
	for _, f := range fs {
		ff := formField{Var: f.Var, Type: f.Type, Label: f.Label, Desc: f.Desc, Values: f.Values}
		if f.Required {
			ff.Required = &struct{}{}
		}
		out = append(out, ff)
	}
	return out
}

func runAdapterCommand(cmd Command) func(c *Component, ctx context.Context, user string, submitted *dataForm) (commandOut, *stanzaError) {
	return func(c *Component, ctx context.Context, user string, submitted *dataForm) (commandOut, *stanzaError) {
		values := map[string][]string{}
		if submitted != nil {
			for _, f := range submitted.Fields {
				if f.Var == "" || f.Var == "FORM_TYPE" {
					continue
				}
				vs := make([]string, 0, len(f.Values))
				for _, v := range f.Values {
					vs = append(vs, strings.TrimSpace(v))
				}
				values[f.Var] = vs
			}
		}
		if cmd.Form != nil {
			for _, f := range cmd.Form.Fields {
				if f.Required && !slices.ContainsFunc(values[f.Var], func(v string) bool { return v != "" }) {
					return commandOut{}, iqError("bad-request", "the field "+f.Var+" is required")
				}
			}
		}
		res, err := cmd.Execute(ctx, user, values)
		if err != nil {
			return commandOut{}, c.errorFor(err, cmd.Node)
		}
		var out commandOut
		if res.Note != "" {
			out.Notes = infoNote("%s", res.Note)
		}
		if len(res.Fields) > 0 {
			out.Form = &dataForm{Type: "result", Title: res.Title, Fields: formFields(res.Fields)}
		}
		return out, nil
	}
}

// checkIQHandlers refuses handlers for payloads the component serves
// itself, or served twice.
func checkIQHandlers(hs []IQHandler) error {
	type key struct {
		typ  string
		name xml.Name
	}
	seen := map[key]bool{}
	for _, rt := range iqRoutes {
		seen[key{string(rt.typ), rt.payload}] = true
	}
	for _, h := range hs {
		if (h.Type != "get" && h.Type != "set") || h.Payload.Local == "" || h.Serve == nil {
			return fmt.Errorf("component: an IQ handler needs type get or set, a payload and a Serve function (got %q %v)", h.Type, h.Payload)
		}
		k := key{h.Type, h.Payload}
		if seen[k] {
			return fmt.Errorf("component: IQ %s {%s}%s is served twice", h.Type, h.Payload.Space, h.Payload.Local)
		}
		seen[k] = true
	}
	return nil
}

// adapterIQOptions are the mux options of the adapter's IQ handlers.
func (c *Component) adapterIQOptions(ctx context.Context) []mux.Option {
	opts := make([]mux.Option, 0, len(c.o.IQHandlers))
	for _, h := range c.o.IQHandlers {
		opts = append(opts, mux.IQFunc(stanza.IQType(h.Type), h.Payload, func(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			in := &inIQ{XMLName: iq.XMLName, ID: iq.ID, From: iq.From.String(), To: iq.To.String(), Type: string(iq.Type)}
			// The payload is read on the reader; the handler runs off it.
			toks, err := readElement(xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)))
			if err != nil {
				return replyIQError(t, in, iqError("bad-request", "the request could not be read: "+err.Error()))
			}
			r, err := c.parseRoute(in.From, in.To)
			if err != nil {
				return replyIQError(t, in, iqError("jid-malformed", "invalid address: "+err.Error()))
			}
			if r.to.Localpart() != "" {
				return serviceUnavailable(t, in)
			}
			if !c.permitted(r.from) {
				return replyIQError(t, in, iqError("forbidden", c.notServed()))
			}
			return c.runOffReader(ctx, t, func(w encoder) error { return c.serveAdapterIQ(ctx, w, in, h, toks) })
		}))
	}
	return opts
}

// readElement copies the tokens of one element.
func readElement(d *xml.Decoder) ([]xml.Token, error) {
	var toks []xml.Token
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		toks = append(toks, xml.CopyToken(tok))
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				return toks, nil
			}
		}
	}
}

type tokenSlice []xml.Token

func (s *tokenSlice) Token() (xml.Token, error) {
	if len(*s) == 0 {
		return nil, errEndOfTokens
	}
	t := (*s)[0]
	*s = (*s)[1:]
	return t, nil
}

var errEndOfTokens = errors.New("end of element")

func (c *Component) serveAdapterIQ(ctx context.Context, w encoder, in *inIQ, h IQHandler, toks []xml.Token) error {
	rctx, cancel := registrarContext(ctx)
	defer cancel()
	req := IQ{ID: in.ID, From: in.From, To: in.To, Type: in.Type, Decode: func(v any) error {
		ts := tokenSlice(slices.Clone(toks))
		return xml.NewTokenDecoder(&ts).Decode(v)
	}}
	ans, err := h.Serve(rctx, req)
	if err != nil {
		return replyIQError(w, in, c.errorFor(err, "IQ {"+h.Payload.Space+"}"+h.Payload.Local))
	}
	if env := ans.Queue; env != nil {
		env.ID, env.Gateway = nuid.Next(), c.o.Name
		env.Time = time.Now().UTC()
		if _, err := c.o.Bus.Publish(rctx, bus.OutSubject(c.o.Name), env, ans.QueueID); err != nil {
			c.log.Warn("could not store the work of an IQ; the sender may retry", "id", in.ID, "err", err)
			return replyIQError(w, in, newStanzaError("wait", "internal-server-error", "the gateway could not store this request; try again later", ""))
		}
	}
	return w.Encode(outIQ{ID: in.ID, From: in.To, To: in.From, Type: "result", Payload: ans.Payload})
}
