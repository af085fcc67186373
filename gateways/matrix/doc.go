// Package matrix is the Matrix adapter: each XMPP user logs in to their own
// Matrix account, and the gateway is one more device of theirs (per-user
// puppeting, like the IRC adapter). Matrix users are XMPP contacts; direct
// chats both ways, with corrections, replies, reactions, retractions, read
// markers and typing carried natively.
//
// # Logging in
//
// A user registers with the gateway's domain (XEP-0077): the form asks
// for the homeserver URL (homeserver), the full Matrix ID (username) and
// the password (password); the ad-hoc command "Log in to Matrix" (node
// matrix-login) does the same. The gateway logs in as a new device (named
// device_name) and keeps the homeserver URL, Matrix ID, device id and
// access token in the registrations bucket; the password is never stored
// and no token is ever logged. Logging in again replaces the device (the
// old one is logged out); unregistering, or "Log out of Matrix"
// (matrix-logout), logs the device out and forgets it. A login stored by
// any process of the gateway connects the user in the processes that run
// the adapter, which watch the logins.
//
// The homeserver URL comes from the user, so it is checked before any
// request: https (plain http only to loopback with
// allow_private_homeservers), a host in allowed_homeservers when that is
// set, and resolving to public addresses only (loopback, private,
// link-local and CGNAT addresses are refused, at login and again at every
// connection, against DNS rebinding) unless allow_private_homeservers.
//
// # Addresses
//
//	@bob:example.org     ⇄ bob%example.org@<domain>
//	#room:example.org    ⇄ #room%example.org@<domain>
//	!id:example.org      ⇄ !id%example.org@<domain>
//
// '%' cannot occur in a server name, so the last '%' separates it and the
// mapping is reversible; characters a JID localpart cannot hold (such as
// '/') travel XEP-0106-escaped, done by the component.
//
// # Direct chats
//
// A message to a contact goes to the direct chat with them: the newest
// room m.direct lists for them, or else a new room created as Element
// creates one (trusted_private_chat preset, is_direct invite) and added to
// m.direct. An invitation marked is_direct from a Matrix user is accepted
// and recorded in m.direct; what that user says there reaches the XMPP
// user. Messages of the user's own account (sent from this device or
// another) are not echoed.
//
//	XMPP                                Matrix
//	message                             m.room.message m.text ("/me " ⇄ m.emote)
//	correction (XEP-0308)               m.replace edit (m.new_content)
//	reply (XEP-0461)                    m.in_reply_to (the fallback quote is dropped inbound)
//	reaction (XEP-0444)                 m.annotation per emoji; a removal redacts it
//	retraction (XEP-0424)               redaction
//	displayed marker (XEP-0333)         m.read receipt
//	chat states (XEP-0085)              typing notifications
//	media (XEP-0066 URL)                m.image/m.video/m.audio/m.file: fetched (at most
//	                                    50 MB, private addresses refused unless
//	                                    allow_private_homeservers) and uploaded to the
//	                                    content repository; inbound, a link of the
//	                                    gateway's (http.public_url, 7 days) fetching it
//	                                    with the user's login, else the homeserver's
//	                                    unauthenticated download URL
//
// formatted_body is not carried: XMPP gets the plain body.
//
// # Rooms
//
// #alias%server@<domain> and !id%server@<domain> are XEP-0045 rooms.
// Joining joins the Matrix room; its joined members become occupants,
// their display names (else their localparts) the nicks, then the user,
// then the topic as the subject. Members joining, leaving (the reason as
// status) and changing display name (a nick change) follow, and so does
// the topic. The user's messages are reflected to their clients with the
// id they gave them; corrections, replies, reactions, retractions,
// typing and read receipts work in rooms as in direct chats. Leaving the
// XMPP room leaves the Matrix room. An invitation to a room (not a direct
// chat) becomes a XEP-0249 invitation from the inviter, naming the room's
// canonical alias when it has one. The rooms joined from XMPP are kept
// in the registrations bucket, so after a restart of the adapter what is
// said there goes on reaching the full JID that joined.
//
// # Nothing lost, nothing twice
//
// Each user's device syncs with /sync. The token of a batch is stored in
// the registrations bucket once everything in it was handed to the
// gateway; a restart (of the gateway or the homeserver) resumes from it, so
// what arrived meanwhile is delivered, in order, stamped (XEP-0203) with
// when the homeserver received it (so is any message older than 10 s). A batch handed over twice
// (a crash between the hand-over and storing the token) carries the same
// event ids, which the bus deduplicates. Outbound events use a transaction
// id derived from the bus message's key, so a retried send is answered
// with the same event instead of making a second one. A new login starts
// from the present: earlier history is not delivered.
//
// # Several processes
//
// Sends are plain requests, served by whichever adapter process the bus
// hands them to; each user's /sync runs in one process only, the holder
// of the user's sync lease (lease.go), which another process takes over
// when the holder stops (at once) or dies (within leaseTTL), resuming from
// the stored token.
//
// # Configuration
//
// The gateways.<name>.matrix block (see Config):
//
//	allowed_homeservers        host names users may log in to (default: any)
//	allow_private_homeservers  allow homeservers on private addresses (tests)
//	tls_ca_file                PEM CAs trusted for homeservers instead of the system's
//	sync_timeout               long-poll of /sync (default 30s)
//	request_timeout            every other request (default 30s)
//	device_name                the display name of the gateway's devices
//	crypto_dir                 where the devices' encryption state is kept
//	                           (default <bus.data_dir>/matrix-crypto/<name>)
//
// # End-to-end encryption
//
// Built with the tag goolm (make does), each device has its own Olm
// account and Megolm sessions (mautrix's OlmMachine, pure Go), in one
// SQLite file per device in crypto_dir, pickled with a key kept in the
// registrations bucket (encryption.go, crypto.go). Encrypted events are
// decrypted and handled like the events they carry; one whose key does
// not come within keyWait is told to the user, never dropped; sends to
// encrypted rooms are encrypted. Attachments in encrypted rooms
// (encmedia.go): outbound, encrypted before upload and sent as `file`;
// inbound, checked against their hash on arrival and served through the
// gateway's links, decrypted as they pass with the key kept in the link's
// record (never in the link); a file that cannot be delivered is told to
// the user. Devices are not verified and do not use key backup.
// Without the tag (crypto_off.go) there is no encryption:
// encrypted events are told as undecryptable, and sending to an
// encrypted room is refused.
package matrix
