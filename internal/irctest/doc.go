// Package irctest runs a real IRC server (ngircd) and plain IRC clients for
// tests of the IRC gateway.
//
// A server is a child process listening on a free loopback port, with its
// generated config and log in a per-test directory under /tmp. It is stopped
// and removed in t.Cleanup, so tests in different packages (and parallel
// tests in one) each have their own:
//
//	srv := irctest.Start(t, irctest.Options{})
//	// srv.Addr() is where the gateway connects.
//	bob := srv.Dial(t, "bob") // registered: the welcome (001) was received
//	bob.Join(t, "#test")      // returns once the names list (366) arrived
//	bob.Privmsg(t, "alice", "hi")
//	l := bob.Wait(t, 5*time.Second, func(l irctest.Line) bool {
//		return l.Command == "PRIVMSG" && l.Nick() == "alice"
//	})
//
// The server keeps ngircd's flood control (penalty) defaults, so a client
// that floods is throttled and eventually disconnected as it would be in
// production; only the per-address connection limit is lifted and nicks may
// be up to 30 characters (Options.MaxNickLength). DNS and IDENT lookups are
// off so that clients register at once.
//
// TLS: with Options.TLS the server also listens with TLS on a second free
// port (TLSAddr; Addr stays plain text, so a TLS client and a plain one
// meet on one network). At Start the package generates a self-signed ECDSA
// P-256 certificate for 127.0.0.1 and localhost, valid for a day, and
// writes cert.pem and key.pem (owned by nobody when the test runs as root)
// and RFC 7919 DH parameters (dh.pem, which spares ngircd generating its
// own) into the server directory. The certificate is its own CA:
// CACertFile is the PEM path to trust. DialTLS connects a client over TLS
// trusting it.
//
//	srv := irctest.Start(t, irctest.Options{TLS: true})
//	cfg.Server, cfg.TLSCAFile = srv.TLSAddr(), srv.CACertFile()
//
// Server lifecycle: Stop ends the process (SIGTERM, then SIGKILL after a
// deadline) but keeps the directory, ports and certificate, so Start
// brings the same server back on the same addresses; Restart is
// Stop+Start. ngircd keeps no state: after a restart every client must
// reconnect and channels are new.
// Log returns the server's log, for failure messages. When the test runs as
// root, ngircd runs as nobody (it would switch itself, losing the parent
// death signal that stops it if the test binary is killed).
//
// Clients: Dial returns a registered client that reads in the background
// and answers the server's PINGs. Every received line is queued; Wait
// consumes the first queued match and fails the test, with everything that
// was received, if nothing matches before the timeout. Lines are parsed by
// this package's own small parser, independent of the gateway's.
//
// A missing ngircd is a test failure, not a skip. Set IRCTEST_KEEP=1 to keep
// a failed test's server directory.
//
// API summary:
//
//	Start(t, Options) *Server
//	(*Server) Addr, TLSAddr, CACertFile, Name, Password, Dir, Log,
//	          Start, Stop, Restart, Dial, DialTLS
//	Dial(t, addr, password, nick) *Client
//	(*Client) Nick, Send, Write (for other goroutines), Privmsg, Join,
//	          Wait, TryWait, Received, Quit, Close, Done
//	Line: Raw, Tags, Prefix, Command, Params; Nick, Param, Text
package irctest
