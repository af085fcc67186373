package component

import "context"

// Registrar stores which network address (a phone number, a nick) belongs to
// which user. Adapters that have one (twilio) provide it; the component
// exposes it through XEP-0077 registration and XEP-0050 ad-hoc commands.
// Users are bare JIDs. Errors that implement
//
//	interface{ StanzaCondition() string }
//
// (and optionally StanzaType() string, StanzaText() string) become stanza
// errors with that condition; any other error is an internal-server-error
// and is logged.
type Registrar interface {
	// Lookup returns the address assigned to user, "" when none.
	Lookup(ctx context.Context, user string) (string, error)
	// Register gives user an address (from the pool) and returns it; a user
	// who already has one gets the same one back.
	Register(ctx context.Context, user string) (string, error)
	// Unregister releases user's address and returns it ("" when none).
	Unregister(ctx context.Context, user string) (string, error)
	// Assign gives address to user (administrators), replacing what user had.
	Assign(ctx context.Context, user, address string) error
	// Unassign removes the assignment of address (administrators) and
	// returns the user who had it.
	Unassign(ctx context.Context, address string) (string, error)
	// List returns every assignment, user → address, static ones included.
	List(ctx context.Context) (map[string]string, error)
}

// AddressTranslator implements XEP-0100 jabber:iq:gateway: it turns what a
// person typed ("(555) 123-4567") into the network address used as the
// contact's localpart ("+15551234567"). Errors follow the Registrar rule.
type AddressTranslator interface {
	TranslateAddress(input string) (string, error)
	// AddressPrompt returns the description and prompt label shown to users.
	AddressPrompt() (desc, prompt string)
}

// AddressChooser is a Registrar whose users choose their address (an IRC
// nick) when they register. The registration form then asks for it.
type AddressChooser interface {
	// AddressField returns the form field's label and the instructions.
	AddressField() (label, instructions string)
	// RegisterAs gives user the address they asked for, replacing theirs.
	RegisterAs(ctx context.Context, user, address string) (string, error)
}

// FormRegistrar is a Registrar whose users register with a form of the
// adapter's (a network login) instead of an address from a pool or a
// chosen nick: the XEP-0077 form is that form, and a submission is handed
// over whole. Errors follow the Registrar rule.
type FormRegistrar interface {
	// RegistrationForm returns the form's title, instructions and fields.
	RegistrationForm() (title, instructions string, fields []CommandField)
	// RegisterForm registers user with the submitted values by field var
	// and returns their address.
	RegisterForm(ctx context.Context, user string, values map[string][]string) (string, error)
}
