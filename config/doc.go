// Package config loads and validates the xmppgw configuration.
//
// # Layers
//
// [Load] merges four layers, each overriding the one before it:
//
//  1. built-in defaults (role all, xmpp.server 127.0.0.1:5347, bus.data_dir
//     ./data, bus.replicas 1, log.level info, log.format text);
//  2. the YAML file, if one is given (a YAML null means "keep the default");
//  3. environment variables starting with XMPPGW_;
//  4. command-line flags registered by [RegisterFlags], of which only the
//     ones the user actually set count, and last of all every --set key=value.
//
// # Environment
//
// A variable's name, minus the XMPPGW_ prefix and lower-cased, is the key,
// with a double underscore separating levels and a single underscore kept:
//
//	XMPPGW_BUS__DATA_DIR=/var/lib/xmppgw        bus.data_dir
//	XMPPGW_GATEWAYS__SMS__SECRET=s3cret         gateways.sms.secret
//	XMPPGW_GATEWAYS__SMS__ALLOWED_DOMAINS=a.com,b.com
//
// Values from the environment and from flags are strings: lists are
// comma-separated and numbers, booleans and durations are parsed as needed.
//
// # Strictness
//
// Every key is checked against the Go types, including the adapter-specific
// block that sits under a gateway's adapter ID (gateways.sms.twilio.*), which
// is decoded into the typed struct the adapter supplies through
// [Options.AdapterSchema]; adapter: external is built in, and its block
// (gateways.<name>.external) is an [External]. A key nobody reads is an
// error, not a silent no-op, because a typo in a secret's key would
// otherwise surface only as a confusing failure at run time. All problems
// are reported at once, each naming its dotted key.
//
// # Secrets
//
// A string field keyed X_file next to a string field keyed X (secret and
// secret_file; auth_token and auth_token_file in an adapter block) names a
// file whose content, minus trailing line breaks, becomes X. Fields tagged
// secret:"true" are shown as "[redacted]" by [Config.Redacted].
package config
