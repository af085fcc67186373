//go:build !goolm

package matrix

// Built without the goolm tag: no end-to-end encryption (mautrix's crypto
// would need cgo and libolm otherwise). Encrypted events reach users as a
// notice that they could not be decrypted, and sending to an encrypted
// room is refused. make build, make test and the demo build with the tag.

import "context"

func openE2EE(context.Context, *session) (e2ee, error) { return nil, errNotBuilt }
