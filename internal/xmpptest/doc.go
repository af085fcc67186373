// Package xmpptest runs real XMPP servers (Prosody, ejabberd) and real XMPP
// clients for end-to-end tests.
//
// A server is a child process listening on free loopback ports, with its
// config, data and logs in a per-test directory. It is stopped and removed in
// t.Cleanup, so tests in different packages can run in parallel:
//
//	srv := xmpptest.StartProsody(t, xmpptest.Options{
//		Components: map[string]string{"sandbox.localhost": "secret"},
//	})
//	// srv.ComponentAddr() is where the gateway connects (XEP-0114);
//	// srv.C2SAddr() is where clients log in.
//	alice := xmpptest.Login(t, srv, "alice", "password")
//	id := alice.SendChat(t, "+15551234567@sandbox.localhost", "hi")
//	reply := alice.WaitChat(t, 5*time.Second, func(c xmpp.Chat) bool {
//		return c.Text == "echo: hi"
//	})
//
// Both servers accept plain-text authentication without TLS on loopback.
// Offline storage is off unless Options.Offline is set, so a message to a
// user without a session bounces (service-unavailable) rather than waiting.
// Options.Users defaults to alice and bob with password "password";
// Options.Domain defaults to "localhost". One component listener
// (ComponentAddr) serves every domain in Options.Components; it only listens
// when at least one component is configured.
//
// Server lifecycle: Stop ends the process (SIGTERM, then SIGKILL after a
// deadline) but keeps the directory and ports, so Start brings the same server
// back on the same addresses with the same accounts; Restart is Stop+Start.
// Start returns once the c2s (and component) ports accept connections. Log
// returns the server's log files, for failure messages.
//
// Clients: Login returns a logged-in go-xmpp client (initial presence sent)
// that reads in the background. Everything received is queued twice: as
// xmpp.Chat values from go-xmpp (WaitChat) and as parsed Stanza values built
// from the raw XML (WaitStanza). Stanza carries what go-xmpp drops: the stanza
// id, the error type and defined condition of type='error' stanzas, and the
// raw XML. Each Wait* consumes the first queued match and fails the test, with
// everything that was received, if nothing matches before the timeout. Every
// network step has a timeout; nothing waits forever.
//
// A missing server binary is a test failure, not a skip: `make test` installs
// both servers (deploy/install-deps.sh). ejabberd must be started by root:
// ejabberdctl switches to the ejabberd system user.
//
// Set XMPPTEST_DEBUG=1 to make the servers log at debug level, and
// XMPPTEST_KEEP=1 to keep a failed test's server directory (under /tmp).
//
// API summary:
//
//	StartProsody(t, Options) *Server / StartEjabberd(t, Options) *Server
//	(*Server) Name, Domain, Dir, C2SAddr, ComponentAddr, Log, Start, Stop, Restart
//	Login(t, srv, user, password) *Client
//	(*Client) JID, BareJID, SendChat (returns the id), SendRaw,
//	          Send (SendRaw returning the error, for other goroutines), Done,
//	          WaitChat (xmpp.Chat), WaitStanza (Stanza), Stanzas (raw XML), Close
//	ParseStanza(raw) (Stanza, error)
//
// Process hygiene: Prosody dies with the test binary (Pdeathsig); ejabberd
// runs under a small shell "lifeline" that stops the Erlang VM when the test
// binary's end of its stdin pipe closes, so no server outlives a killed test.
// ejabberd runs without epmd (ERL_DIST_PORT), with a unique node name and
// cookie per instance.
package xmpptest
