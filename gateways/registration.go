package gateways

import "context"

// FormRegistrar is a Registrar whose users register by filling in a form
// of the adapter's (a network login: server, account, password) rather
// than by being assigned an address or choosing a nick. The component
// serves RegistrationForm as the XEP-0077 data form and hands what the
// user submitted to RegisterForm; unregistering calls Unregister, as for
// every Registrar.
type FormRegistrar interface {
	// RegistrationForm is the form a user fills in. The values of
	// registered users are not shown (a password would be).
	RegistrationForm() Form
	// RegisterForm registers user with the submitted values by field var
	// and returns their address on the network. Errors follow the
	// Registrar's rule (an *Error's condition and text reach the user).
	RegisterForm(ctx context.Context, user string, values map[string][]string) (string, error)
}
