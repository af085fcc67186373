// Package irc is the IRC adapter: XMPP users appear on an IRC network
// under nicks of their choosing, talk to IRC users privately, and enter
// IRC channels as XEP-0045 rooms.
//
// # One connection per user
//
// Every registered user (a bare JID) has an IRC connection of their own,
// registered with the nick they chose when they registered with the
// gateway (the adapter's Registrar is a gateways.AddressChooser: the
// registration form asks for a nick). Other IRC users see a person, not a
// bot relaying for many.
//
// Connections are persistent, like a bouncer's: Start connects every
// registered user (a few at a time) and returns once each first attempt
// ended, so a user receives private messages sent to their nick without
// having sent anything since the gateway started. The adapter watches the
// registrations in the KV bucket, so a registration made by any process of
// the gateway connects the user, a new nick changes theirs (NICK), and an
// unregistration disconnects them (QUIT). A Send or Join for a user who has
// no connection yet connects them and waits. Because connections live in
// the adapter, one gateway runs one IRC adapter process: a second would
// connect every user twice.
//
// # What is mapped
//
//	XMPP                                  IRC
//	chat to nick@domain                   PRIVMSG nick
//	"/me waves"                           CTCP ACTION (both ways, also in rooms)
//	join #chan@domain                     JOIN #chan; occupants from NAMES, then the
//	                                      user (Self), then the subject (topic)
//	groupchat message                     PRIVMSG #chan, reflected to the user's clients
//	subject change                        TOPIC #chan
//	leave the room                        PART #chan (once the user's last client left)
//	occupants joining, leaving, renamed   JOIN, PART, QUIT, KICK (status: reason),
//	                                      NICK (a nick change), MODE (+o: moderator)
//	chat from nick@domain                 PRIVMSG or NOTICE to the user's nick
//	gateway notices                       lost or recovered connection, nick in use,
//	                                      nick refused by the server
//
// Channel operators (and owners, admins, half-ops) are moderators; everyone
// else, voiced or not, is a participant. A join the server refuses (invite
// only, banned, key, full…) fails with a permanent error whose condition
// follows XEP-0045. An error the server answers a message with (no such
// nick, cannot send to channel, not a channel operator for TOPIC) is
// reported as a failed delivery of that message. Other CTCP queries
// (VERSION, PING, TIME, CLIENTINFO) are answered, rate limited, and never
// shown; notices from the server itself are logged, not delivered.
// Incoming text loses mIRC formatting codes and control characters XML
// cannot carry; text that is not UTF-8 is read as Latin-1. IRC has no
// message ids: with the IRCv3 message-tags capability a server's msgid
// deduplicates redelivery, otherwise nothing does (inventing ids could
// wrongly drop two identical lines).
//
// # Long messages
//
// IRC lines are at most 512 bytes as the server relays them, with its
// prefix ":nick!user@host" in front. A body is split at its newlines, then
// each line so that it fits once relayed, at a space near the limit or else
// between characters, never inside a UTF-8 sequence. The prefix length is
// learned from the server (the welcome, our own JOIN) and assumed long
// until then. CR and NUL are dropped; blank lines, which IRC cannot carry,
// are skipped.
//
// # Flood control
//
// Every connection writes through a token bucket: flood_burst lines at
// once, then one per flood_interval. The defaults (4, then one every
// 500ms) stay under ngircd's limits, which process three commands a second
// per client and disconnect one whose unread input passes 2 KiB; after an
// error reply, for which ngircd suspends the client two seconds, the
// connection pauses as long. Busy public networks expect about one line
// every two seconds. A long message is written as a unit: once its first
// line is out, the rest follows even if the sender stops waiting.
//
// # Reconnecting
//
// A dropped connection (EOF, an error, or no answer to a PING sent after
// ping_interval of silence, within ping_timeout) is reconnected with
// exponential backoff (1 s to 1 min, with jitter). The user is told once
// that the connection was lost and again when it is back; meanwhile Send
// fails with gateways.ErrNotConnected, which the runner retries. A nick in
// use gets "_" appended (the user is told); a nick the server refuses
// outright waits for the user to register another. Channels are rejoined:
// occupants that left meanwhile leave, the current ones, the user and the
// subject are sent again, then a note in the room ("Reconnected; rejoined
// #chan"). A server certificate that does not verify fails the connection
// like any other error, retried in case the server's certificate is fixed;
// the error (logged, and returned by Send) says whether the system's CAs or
// those of tls_ca_file were trusted.
//
// # Configuration
//
// The gateways.<name>.irc block (see Config):
//
//	server                    host:port of the IRC server (required)
//	tls                       connect with TLS (default false)
//	tls_insecure_skip_verify  accept any certificate (with tls only)
//	tls_ca_file               PEM file of the CA certificates to trust instead
//	                          of the system's (with tls only, not with
//	                          tls_insecure_skip_verify); read at start-up
//	password, password_file   server password (PASS), never logged
//	realname                  the real name shown in WHOIS
//	flood_burst               lines sent at once (default 4)
//	flood_interval            then one line per interval (default 500ms)
//	max_connections           IRC connections (users) at most; 0: no limit
//	connect_timeout           connecting and registering (default 30s)
//	ping_interval             silence before the adapter PINGs (default 2m)
//	ping_timeout              then wait for an answer this long (default 30s)
package irc
