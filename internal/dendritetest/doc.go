// Package dendritetest starts a real Matrix homeserver for tests: Dendrite
// (github.com/matrix-org/dendrite, Apache-2.0), built from the Go module
// proxy the first time it is needed and cached under the user's cache
// directory by version ($XDG_CACHE_HOME/xmppgw/dendrite-<version>, or
// ~/.cache/…), so later runs and other test packages reuse the binary. The
// build needs cgo and gcc (SQLite) and takes about three minutes on two
// cores; deploy/install-deps.sh dendrite does the same build ahead of the
// tests. A file lock keeps two test processes from building at once.
//
// Each Start is a throwaway homeserver named "localhost" on a reserved
// loopback port (internal/proctest), with SQLite databases and its
// JetStream on disk in a temporary directory (so it can be restarted with
// its state), federation off, rate limiting off, open registration off and
// a registration shared secret: Register creates accounts with it. Client
// logs a mautrix client in, for tests that play a Matrix user; with the
// build tag goolm, User.EnableCrypto gives such a user end-to-end
// encryption (mautrix's Olm machine, in memory), as Element has.
package dendritetest
