package component

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Multi-stage command sessions live this long, and at most this many at once.
const (
	commandSessionTTL  = 10 * time.Minute
	maxCommandSessions = 1024
)

// adhocCommand is one XEP-0050 command on the gateway's domain. A command
// with a form is two-stage (form, then submission); one without completes
// on execute.
type adhocCommand struct {
	node, name string
	admin      bool
	form       func() *dataForm
	run        func(c *Component, ctx context.Context, user string, submitted *dataForm) (commandOut, *stanzaError)
}

// builtinNodes are the nodes of the component's own commands, served with
// a Registrar; an adapter's commands cannot take them.
var builtinNodes = []string{"show-number", "assign-number", "unassign-number", "list-registrations"}

// builtinCommands are the component's own, in the order disco#items lists
// them; the adapter's (adapter.go) follow. The nodes are the same on every
// network (show-number shows an IRC nick too); names and forms say what
// the network's addresses are. Assigning is left out where an
// administrator cannot give a user an address (a Matrix login needs the
// user's password).
func (c *Component) builtinCommands() []adhocCommand {
	a := c.addr
	cmds := []adhocCommand{{node: "show-number", name: "Show my " + a.noun, run: (*Component).showNumber}}
	if !c.o.Unassignable {
		cmds = append(cmds,
			adhocCommand{node: "assign-number", name: "Assign " + a.noun, admin: true, form: c.assignForm, run: (*Component).assignNumber},
			adhocCommand{node: "unassign-number", name: "Unassign " + a.noun, admin: true, form: c.unassignForm, run: (*Component).unassignNumber})
	}
	return append(cmds, adhocCommand{node: "list-registrations", name: "List registrations", admin: true, run: (*Component).listRegistrations})
}

// addressWords name a network's addresses in commands and forms.
type addressWords struct {
	noun  string // "number", "nick"
	label string // a column or field naming one: "Phone number"
	input string // the field an administrator types one into
}

func wordsFor(noun string) addressWords {
	if noun == "" || noun == "number" {
		return addressWords{noun: "number", label: "Phone number", input: "Phone number (E.164)"}
	}
	label := strings.ToUpper(noun[:1]) + noun[1:]
	return addressWords{noun: noun, label: label, input: label}
}

func (c *Component) findCommand(node string) *adhocCommand {
	for i := range c.commands {
		if c.commands[i].node == node {
			return &c.commands[i]
		}
	}
	return nil
}

// commandOut is the <command/> of a response.
type commandOut struct {
	XMLName   xml.Name        `xml:"http://jabber.org/protocol/commands command"`
	Node      string          `xml:"node,attr"`
	SessionID string          `xml:"sessionid,attr,omitempty"`
	Status    string          `xml:"status,attr"`
	Actions   *commandActions `xml:"actions,omitempty"`
	Notes     []commandNote   `xml:"note"`
	Form      *dataForm       `xml:",omitempty"`
}

type commandActions struct {
	Execute  string    `xml:"execute,attr,omitempty"`
	Complete *struct{} `xml:"complete"`
}

type commandNote struct {
	Type string `xml:"type,attr"`
	Text string `xml:",chardata"`
}

func infoNote(format string, args ...any) []commandNote {
	return []commandNote{{Type: "info", Text: fmt.Sprintf(format, args...)}}
}

// commandError is a stanza error with a XEP-0050 application condition
// (bad-sessionid, bad-action, malformed-action…).
func commandError(cond, app, text string) *stanzaError {
	e := iqError(cond, text)
	e.App = &appCondition{XMLName: xml.Name{Space: nsCommands, Local: app}}
	return e
}

func (c *Component) isAdmin(from jid.JID) bool {
	return c.admins[strings.ToLower(from.Bare().String())]
}

// mayRun reports whether from may run cmd (and see it listed).
func (c *Component) mayRun(from jid.JID, cmd *adhocCommand) bool {
	return c.permitted(from) && (!cmd.admin || c.isAdmin(from))
}

// onCommandNodeItems answers disco#items on a node of the domain: the
// commands node lists what the requester may run (XEP-0050 §2.2).
func (c *Component) onCommandNodeItems(w encoder, iq *inIQ, r route) error {
	if iq.Payload.Node != nsCommands {
		return replyIQError(w, iq, iqError("item-not-found", ""))
	}
	items := discoItems{Node: nsCommands, Items: []discoItem{}}
	for i := range c.commands {
		if cmd := &c.commands[i]; c.mayRun(r.from, cmd) {
			items.Items = append(items.Items, discoItem{JID: c.domain.String(), Node: cmd.node, Name: cmd.name})
		}
	}
	return w.Encode(outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result", Payload: items})
}

// onCommandNodeInfo answers disco#info on the commands node and on each
// command's node (XEP-0050 §2.2, §2.3).
func (c *Component) onCommandNodeInfo(w encoder, iq *inIQ, r route) error {
	node := iq.Payload.Node
	info := discoInfo{Node: node, Features: []feature{{nsDiscoInfo}}}
	if node == nsCommands {
		info.Identities = []identity{{Category: "automation", Type: "command-list"}}
	} else if cmd := c.findCommand(node); cmd != nil {
		info.Identities = []identity{{Category: "automation", Type: "command-node", Name: cmd.name}}
		info.Features = append(info.Features, feature{nsCommands}, feature{nsDataForms})
	} else {
		return replyIQError(w, iq, iqError("item-not-found", ""))
	}
	return w.Encode(outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result", Payload: info})
}

// onCommand executes an XEP-0050 command (an iq set).
func (c *Component) onCommand(ctx context.Context, w encoder, iq *inIQ, r route) error {
	if !c.permitted(r.from) {
		return replyIQError(w, iq, iqError("forbidden", c.notServed()))
	}
	p := &iq.Payload
	cmd := c.findCommand(p.Node)
	if cmd == nil {
		return replyIQError(w, iq, iqError("item-not-found", "there is no command "+p.Node))
	}
	if !c.mayRun(r.from, cmd) {
		return replyIQError(w, iq, iqError("forbidden", "only the gateway's administrators may run "+cmd.node))
	}
	reply := outIQ{ID: iq.ID, From: iq.To, To: iq.From, Type: "result"}
	owner := r.from.String()
	sid := p.SessionID
	now := time.Now()

	action := p.Action
	if p.Form != nil && p.Form.Type == "cancel" {
		action = "cancel"
	}
	switch action {
	case "cancel":
		c.cmds.end(sid, cmd.node, owner)
		reply.Payload = commandOut{Node: cmd.node, SessionID: sid, Status: "canceled"}
		return w.Encode(reply)
	case "", "execute", "complete", "next":
	case "prev":
		return replyIQError(w, iq, commandError("bad-request", "bad-action", "this command has a single stage"))
	default:
		return replyIQError(w, iq, commandError("bad-request", "malformed-action", "unknown action "+action))
	}
	if sid != "" && !c.cmds.valid(sid, cmd.node, owner, now) {
		return replyIQError(w, iq, commandError("bad-request", "bad-sessionid",
			"this command session is unknown or has expired; start the command again"))
	}

	submitted := p.Form
	if submitted != nil && submitted.Type != "submit" {
		submitted = nil
	}
	if cmd.form != nil && submitted == nil {
		// First stage: hand out the form. A client that sends the form
		// with its first request (no session) skips this.
		if sid == "" {
			var ok bool
			if sid, ok = c.cmds.start(cmd.node, owner, now); !ok {
				return replyIQError(w, iq, iqError("resource-constraint", "too many command sessions in progress; try again later"))
			}
		}
		reply.Payload = commandOut{
			Node: cmd.node, SessionID: sid, Status: "executing",
			Actions: &commandActions{Execute: "complete", Complete: &struct{}{}},
			Form:    cmd.form(),
		}
		return w.Encode(reply)
	}

	rctx, cancel := registrarContext(ctx)
	defer cancel()
	out, serr := cmd.run(c, rctx, r.from.Bare().String(), submitted)
	if serr != nil {
		// The session stays: the admin can correct the form and resubmit.
		return replyIQError(w, iq, serr)
	}
	c.cmds.end(sid, cmd.node, owner)
	if sid == "" {
		sid = nuid.Next()
	}
	out.Node, out.SessionID, out.Status = cmd.node, sid, "completed"
	reply.Payload = out
	return w.Encode(reply)
}

func (c *Component) showNumber(ctx context.Context, user string, _ *dataForm) (commandOut, *stanzaError) {
	number, err := c.o.Registrar.Lookup(ctx, user)
	if err != nil {
		return commandOut{}, c.errorFor(err, "show-number lookup")
	}
	a := c.addr
	out := commandOut{Form: &dataForm{
		Type:   "result",
		Title:  "Your " + a.noun,
		Fields: []formField{{Var: "number", Type: "text-single", Label: "Your " + strings.ToLower(a.label[:1]) + a.label[1:], Values: values(number)}},
	}}
	if number == "" {
		out.Notes = infoNote("You have no %s; register with the gateway first", a.noun)
	} else {
		out.Notes = infoNote("Your %s is %s", a.noun, number)
	}
	return out, nil
}

func (c *Component) assignForm() *dataForm {
	a := c.addr
	return &dataForm{
		Type:         "form",
		Title:        "Assign a " + a.noun,
		Instructions: []string{fmt.Sprintf("Give a %s to a user. A %s the user already had is released.", strings.ToLower(a.label), a.noun)},
		Fields: []formField{
			{Var: "user", Type: "jid-single", Label: "User (bare JID)", Required: &struct{}{}},
			{Var: "number", Type: "text-single", Label: a.input, Required: &struct{}{}},
		},
	}
}

func (c *Component) unassignForm() *dataForm {
	a := c.addr
	return &dataForm{
		Type:         "form",
		Title:        "Unassign a " + a.noun,
		Instructions: []string{fmt.Sprintf("Take a %s away from whoever has it.", strings.ToLower(a.label))},
		Fields: []formField{
			{Var: "number", Type: "text-single", Label: a.input, Required: &struct{}{}},
		},
	}
}

// required returns the named field of a submitted form, or the bad-request
// error naming it.
func required(f *dataForm, name string) (string, *stanzaError) {
	v, _ := f.value(name)
	if v == "" {
		return "", iqError("bad-request", "the field "+name+" is required")
	}
	return v, nil
}

func (c *Component) assignNumber(ctx context.Context, _ string, f *dataForm) (commandOut, *stanzaError) {
	user, serr := required(f, "user")
	if serr != nil {
		return commandOut{}, serr
	}
	number, serr := required(f, "number")
	if serr != nil {
		return commandOut{}, serr
	}
	u, err := jid.Parse(user)
	if err != nil || u.Localpart() == "" || u.Resourcepart() != "" {
		return commandOut{}, iqError("jid-malformed", fmt.Sprintf("user %q is not a bare JID such as alice@example.com", user))
	}
	user = u.String()
	if err := c.o.Registrar.Assign(ctx, user, number); err != nil {
		return commandOut{}, c.errorFor(err, "assign-number")
	}
	c.log.Info("address assigned by an administrator", "user", user, "address", number)
	return commandOut{Notes: infoNote("Assigned %s to %s", number, user)}, nil
}

func (c *Component) unassignNumber(ctx context.Context, _ string, f *dataForm) (commandOut, *stanzaError) {
	number, serr := required(f, "number")
	if serr != nil {
		return commandOut{}, serr
	}
	user, err := c.o.Registrar.Unassign(ctx, number)
	if err != nil {
		return commandOut{}, c.errorFor(err, "unassign-number")
	}
	c.log.Info("address unassigned by an administrator", "user", user, "address", number)
	if user == "" {
		return commandOut{Notes: infoNote("Released %s (it was not assigned)", number)}, nil
	}
	return commandOut{Notes: infoNote("Released %s (was %s)", number, user)}, nil
}

func (c *Component) listRegistrations(ctx context.Context, _ string, _ *dataForm) (commandOut, *stanzaError) {
	regs, err := c.o.Registrar.List(ctx)
	if err != nil {
		return commandOut{}, c.errorFor(err, "list-registrations")
	}
	form := &dataForm{
		Type:  "result",
		Title: "Registrations",
		Reported: &formReported{Fields: []formField{
			{Var: "user", Type: "jid-single", Label: "User"},
			{Var: "number", Type: "text-single", Label: c.addr.label},
		}},
	}
	for _, user := range slices.Sorted(maps.Keys(regs)) {
		form.Items = append(form.Items, formItem{Fields: []formField{
			{Var: "user", Values: []string{user}},
			{Var: "number", Values: []string{regs[user]}},
		}})
	}
	note := fmt.Sprintf("%d registrations", len(regs))
	if len(regs) == 1 {
		note = "1 registration"
	}
	return commandOut{Notes: infoNote("%s", note), Form: form}, nil
}

// commandSessions are the multi-stage commands waiting for their form. The
// zero value is ready to use.
type commandSessions struct {
	mu sync.Mutex
	m  map[string]commandSession
}

type commandSession struct {
	node, owner string // owner is the full JID that started it
	expires     time.Time
}

// start opens a session; ok is false when too many are open.
func (s *commandSessions) start(node, owner string, now time.Time) (id string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]commandSession{}
	}
	maps.DeleteFunc(s.m, func(_ string, cs commandSession) bool { return now.After(cs.expires) })
	if len(s.m) >= maxCommandSessions {
		return "", false
	}
	id = nuid.Next()
	s.m[id] = commandSession{node: node, owner: owner, expires: now.Add(commandSessionTTL)}
	return id, true
}

// valid reports whether id is a live session of node started by owner.
func (s *commandSessions) valid(id, node, owner string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.m[id]
	return ok && cs.node == node && cs.owner == owner && !now.After(cs.expires)
}

// end closes id if owner holds it for node.
func (s *commandSessions) end(id, node, owner string) {
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.m[id]; ok && cs.node == node && cs.owner == owner {
		delete(s.m, id)
	}
}

func init() {
	handleIQ(stanza.SetIQ, xml.Name{Space: nsCommands, Local: "command"}, func(c *Component, ctx context.Context, w encoder, iq *inIQ, r route) error {
		if len(c.commands) == 0 || r.to.Localpart() != "" {
			return serviceUnavailable(w, iq)
		}
		return c.runOffReader(ctx, w, func(w encoder) error { return c.onCommand(ctx, w, iq, r) })
	})
}
