package main

import (
	"context"

	"github.com/xmppgw/xmppgw/component"
	"github.com/xmppgw/xmppgw/gateways"
)

// formRegistrar hands the component an adapter's gateways.FormRegistrar
// in the component's types (component does not import gateways).
type formRegistrar struct {
	component.Registrar
	f gateways.FormRegistrar
}

var _ component.FormRegistrar = formRegistrar{}

func (r formRegistrar) RegistrationForm() (title, instructions string, fields []component.CommandField) {
	f := r.f.RegistrationForm()
	return f.Title, f.Instructions, commandFields(f.Fields)
}

func (r formRegistrar) RegisterForm(ctx context.Context, user string, values map[string][]string) (string, error) {
	return r.f.RegisterForm(ctx, user, values)
}
