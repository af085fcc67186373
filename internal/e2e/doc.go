// Package e2e holds the end-to-end tests: the real xmppgw binary, run as a
// separate process, attached to real Prosody and ejabberd servers, with real
// XMPP clients logged in. It has no non-test code besides this comment.
package e2e
