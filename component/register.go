package component

import (
	"context"
	"encoding/xml"
	"strings"
	"time"

	"mellium.im/xmpp/stanza"
)

// registrarTimeout bounds one Registrar call. The stream reads nothing else
// while a handler runs, so a stuck store must not stall it for long.
const registrarTimeout = 5 * time.Second

// registerQuery is the XEP-0077 answer to a get.
type registerQuery struct {
	XMLName      xml.Name  `xml:"jabber:iq:register query"`
	Registered   *struct{} `xml:"registered"`
	Instructions string    `xml:"instructions"`
	// Username is the legacy (non-form) view of the registration, for
	// clients that do not render data forms.
	Username string `xml:"username,omitempty"`
	// Nick is the legacy field for a chosen address (AddressChooser).
	Nick *string   `xml:"nick"`
	Form *dataForm `xml:",omitempty"`
}

// registrarContext detaches a Registrar call from the stream's context: a
// registration read just before shutdown is still completed and answered.
func registrarContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), registrarTimeout)
}

// notServed is the text of the forbidden error for users the gateway does
// not serve.
func (c *Component) notServed() string {
	return "this gateway serves users of " + strings.Join(c.o.AllowedDomains, ", ") + " only"
}

// onRegister serves XEP-0077 on the gateway's domain. Registering asks the
// Registrar for an address from its pool; the user has nothing to choose, so
// any set without <remove/> (a submitted form, legacy fields, nothing at all)
// is a registration.
func (c *Component) onRegister(ctx context.Context, w encoder, iq *inIQ, r route) error {
	if !c.permitted(r.from) {
		return replyIQError(w, iq, iqError("forbidden", c.notServed()))
	}
	user := r.from.Bare().String()
	self := c.domain.String()
	rctx, cancel := registrarContext(ctx)
	defer cancel()
	if c.formRegistrar() != nil {
		// A login at the network: its round trips take longer than a
		// lookup in the store.
		cancel()
		rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), formRegistrarTimeout)
		defer cancel()
	}
	reply := outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result"}

	switch {
	case iq.Type == "get":
		number, err := c.o.Registrar.Lookup(rctx, user)
		if err != nil {
			return replyIQError(w, iq, c.errorFor(err, "registration lookup"))
		}
		reply.Payload = c.registerQuery(number)
		return w.Encode(reply)

	case iq.Payload.Remove != nil:
		number, err := c.o.Registrar.Unregister(rctx, user)
		if err != nil {
			return replyIQError(w, iq, c.errorFor(err, "unregister"))
		}
		c.log.Info("user unregistered", "user", user, "address", number)
		if err := w.Encode(reply); err != nil {
			return err
		}
		// XEP-0100 §4.3: the gateway leaves the user's roster and goes
		// offline for them.
		for _, typ := range []string{"unsubscribe", "unsubscribed", "unavailable"} {
			if err := w.Encode(outPresence{From: self, To: user, Type: typ}); err != nil {
				return err
			}
		}
		return nil

	default:
		var number string
		var err error
		if fr := c.formRegistrar(); fr != nil {
			number, err = fr.RegisterForm(rctx, user, iq.Payload.Form.submitted())
		} else if chosen := chosenAddress(iq); chosen != "" && c.chooser() != nil {
			number, err = c.chooser().RegisterAs(rctx, user, chosen)
		} else {
			number, err = c.o.Registrar.Register(rctx, user)
		}
		if err != nil {
			return replyIQError(w, iq, c.errorFor(err, "register"))
		}
		c.log.Info("user registered", "user", user, "address", number)
		if err := w.Encode(reply); err != nil {
			return err
		}
		// XEP-0100 §4.1: the gateway asks to be in the user's roster, and
		// is online.
		if err := w.Encode(outPresence{From: self, To: user, Type: "subscribe"}); err != nil {
			return err
		}
		return w.Encode(outPresence{From: self, To: user, Caps: c.caps(entGateway)})
	}
}

// chooser is the Registrar as an AddressChooser, nil when users do not
// choose their address.
func (c *Component) chooser() AddressChooser {
	ch, _ := c.o.Registrar.(AddressChooser)
	return ch
}

// chosenAddress is what a registration submits as the user's address: the
// form's nick field, or the legacy <nick/> or <username/>.
func chosenAddress(iq *inIQ) string {
	if v, ok := iq.Payload.Form.value("nick"); ok {
		return v
	}
	for _, p := range []*string{iq.Payload.Nick, iq.Payload.Username} {
		if p != nil && strings.TrimSpace(*p) != "" {
			return strings.TrimSpace(*p)
		}
	}
	return ""
}

// formRegistrarTimeout bounds a registration that logs in to the network.
const formRegistrarTimeout = 30 * time.Second

// formRegistrar is the Registrar as a FormRegistrar, nil when users do
// not register with a form of the adapter's.
func (c *Component) formRegistrar() FormRegistrar {
	fr, _ := c.o.Registrar.(FormRegistrar)
	return fr
}

// submitted returns a submitted form's values by field var, FORM_TYPE
// aside; nil for no form.
func (f *dataForm) submitted() map[string][]string {
	if f == nil {
		return nil
	}
	out := map[string][]string{}
	for _, fl := range f.Fields {
		if fl.Var != "" && fl.Var != "FORM_TYPE" {
			out[fl.Var] = fl.Values
		}
	}
	return out
}

// formQuery is the registration form of a FormRegistrar: its fields,
// empty (a password is never shown back), the address when registered.
func (c *Component) formQuery(fr FormRegistrar, address string) registerQuery {
	title, instructions, fields := fr.RegistrationForm()
	q := registerQuery{Instructions: instructions}
	if address != "" {
		q.Registered = &struct{}{}
		q.Username = address
		q.Instructions = "You are registered as " + address + ". Submit the form again to change it; unregister to leave."
	}
	if title == "" {
		title = "Registration with " + c.domain.String()
	}
	f := &dataForm{Type: "form", Title: title, Instructions: []string{q.Instructions},
		Fields: []formField{{Var: "FORM_TYPE", Type: "hidden", Values: []string{nsRegister}}}}
	for _, fl := range fields {
		ff := formField{Var: fl.Var, Type: fl.Type, Label: fl.Label, Desc: fl.Desc}
		if fl.Required {
			ff.Required = &struct{}{}
		}
		f.Fields = append(f.Fields, ff)
	}
	q.Form = f
	return q
}

func (c *Component) registerQuery(address string) registerQuery {
	if fr := c.formRegistrar(); fr != nil {
		return c.formQuery(fr, address)
	}
	if ch := c.chooser(); ch != nil {
		return c.chooseQuery(ch, address)
	}
	number := address
	domain := c.domain.String()
	q := registerQuery{
		Instructions: "Submit this form to get a phone number from " + domain +
			". The gateway assigns the number; you then text anyone as +15551234567@" + domain + ".",
	}
	if number != "" {
		q.Registered = &struct{}{}
		q.Username = number
		q.Instructions = "You are registered with the number " + number +
			". Submitting again keeps it; unregister to release it."
	}
	f := &dataForm{
		Type:         "form",
		Title:        "Registration with " + domain,
		Instructions: []string{q.Instructions},
		Fields: []formField{
			{Var: "FORM_TYPE", Type: "hidden", Values: []string{nsRegister}},
			{Type: "fixed", Values: []string{"Your phone number is assigned by the gateway; you cannot choose it here."}},
			{Var: "number", Type: "text-single", Label: "Your phone number", Values: values(number)},
		},
	}
	q.Form = f
	return q
}

// values is v as a field's values: none when v is empty.
func values(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// chooseQuery is the registration form of a gateway whose users choose
// their address (XEP-0077 "nick" field, in the form and as a legacy field).
func (c *Component) chooseQuery(ch AddressChooser, address string) registerQuery {
	label, instructions := ch.AddressField()
	q := registerQuery{Instructions: instructions, Nick: new(string)}
	if address != "" {
		q.Registered = &struct{}{}
		*q.Nick = address
		q.Instructions = "You are registered as " + address + ". Submit another to change it; unregister to leave."
	}
	q.Form = &dataForm{
		Type:         "form",
		Title:        "Registration with " + c.domain.String(),
		Instructions: []string{q.Instructions},
		Fields: []formField{
			{Var: "FORM_TYPE", Type: "hidden", Values: []string{nsRegister}},
			{Var: "nick", Type: "text-single", Label: label, Required: &struct{}{}, Values: values(address)},
		},
	}
	return q
}

func init() {
	for _, typ := range []stanza.IQType{stanza.GetIQ, stanza.SetIQ} {
		handleIQ(typ, xml.Name{Space: nsRegister, Local: "query"}, func(c *Component, ctx context.Context, w encoder, iq *inIQ, r route) error {
			if c.o.Registrar == nil || r.to.Localpart() != "" {
				return serviceUnavailable(w, iq)
			}
			return c.runOffReader(ctx, w, func(w encoder) error { return c.onRegister(ctx, w, iq, r) })
		})
	}
}
