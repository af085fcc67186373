//go:build goolm

package matrix

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/sqlstatestore"
	_ "modernc.org/sqlite" // pure-Go SQLite: no cgo in the binary
)

// olm is a device's encryption with mautrix's OlmMachine (its pure-Go
// backend, goolm), its crypto and state stores in one SQLite file per
// device (cryptoPath), written through at each change: a kill -9 loses
// nothing the machine had stored.
type olm struct {
	mach   *crypto.OlmMachine
	db     *dbutil.Database
	states *sqlstatestore.SQLStateStore
	cli    *mautrix.Client // the machine's: uploads keys, sends to-device events
	// enc serialises encryption: two sends to one room must not share
	// two Megolm sessions at once.
	enc sync.Mutex
}

var _ e2ee = (*olm)(nil)

// openE2EE opens (or creates) the encryption state of s's device, loads
// its Olm account and makes sure the homeserver has its keys.
func openE2EE(ctx context.Context, s *session) (e2ee, error) {
	a := s.r.a
	key, fresh, err := a.pickleKey(ctx, s.user, s.acc)
	if err != nil {
		return nil, fmt.Errorf("the pickle key: %w", err)
	}
	path := a.cryptoPath(s.user, s.acc)
	if fresh {
		// Pickled with a key that is gone: unreadable. Starting over is
		// refused below if the homeserver already has the device's keys.
		a.removeCryptoStore(s.user, s.acc)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: crypto_dir: %w", errCryptoUnusable, err)
	}
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)") // the sync token on the bus must not get ahead of the keys
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_txlock", "immediate")
	raw, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCryptoUnusable, err)
	}
	db, err := dbutil.NewWithDB(raw, "sqlite3")
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("%w: %w", errCryptoUnusable, err)
	}
	o := &olm{db: db}
	if err := o.open(ctx, s, key); err != nil {
		o.close()
		return nil, err
	}
	return o, nil
}

func (o *olm) open(ctx context.Context, s *session, key []byte) error {
	a := s.r.a
	zl := zerolog.New(zerologWriter{log: a.log.With("user", s.user)}).Level(zerolog.WarnLevel)
	dblog := dbutil.ZeroLogger(zl)
	o.states = sqlstatestore.NewSQLStateStore(o.db, dblog, false)
	if err := o.states.Upgrade(ctx); err != nil {
		return fmt.Errorf("%w: the state store in %s: %w", errCryptoUnusable, a.cryptoDir, err)
	}
	store := crypto.NewSQLCryptoStore(o.db, dblog, string(s.acc.UserID), s.acc.DeviceID, key)
	if err := store.DB.Upgrade(ctx); err != nil {
		return fmt.Errorf("%w: the crypto store in %s: %w", errCryptoUnusable, a.cryptoDir, err)
	}
	cli, err := a.client(s.acc)
	if err != nil {
		return fmt.Errorf("%w: %w", errCryptoUnusable, err)
	}
	cli.StateStore = o.states
	o.cli = cli
	o.mach = crypto.NewOlmMachine(cli, &zl, store, o.states)
	if err := o.mach.Load(ctx); err != nil {
		return fmt.Errorf("%w: loading the Olm account: %w", errCryptoUnusable, err)
	}
	return o.checkKeys(ctx)
}

// checkKeys makes sure the homeserver has the device's keys, uploading
// them the first time. Keys on the homeserver that are not these mean the
// device's state was lost here (or is in another process's crypto_dir):
// new keys for the same device would not be believed by other clients.
func (o *olm) checkKeys(ctx context.Context) error {
	cli := o.cli
	resp, err := cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: map[id.UserID]mautrix.DeviceIDList{cli.UserID: {cli.DeviceID}}})
	if err != nil {
		return fmt.Errorf("reading the device's keys: %w", err)
	}
	shared := o.mach.GetAccount().Shared
	dev, ok := resp.DeviceKeys[cli.UserID][cli.DeviceID]
	switch {
	case !ok || len(dev.Keys) == 0:
		if shared {
			return fmt.Errorf("%w: the device's keys are no longer on the homeserver; log in again", errCryptoUnusable)
		}
		if err := o.mach.ShareKeys(ctx, -1); err != nil {
			return fmt.Errorf("uploading the device's keys: %w", err)
		}
		return nil
	case !shared || dev.Keys.GetEd25519(cli.DeviceID) != o.mach.OwnIdentity().SigningKey:
		return fmt.Errorf("%w: the homeserver has other keys for device %s: its encryption state is not in this process's crypto_dir (lost, or kept by another process); log in again to make a new device", errCryptoUnusable, cli.DeviceID)
	}
	return nil
}

func (o *olm) sync(ctx context.Context, resp *mautrix.RespSync, since string) {
	o.mach.ProcessSyncResponse(ctx, resp, since)
}

func (o *olm) state(ctx context.Context, evt *event.Event) {
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return
	}
	mautrix.UpdateStateStore(ctx, o.states, evt)
	switch evt.Type {
	case event.StateMember:
		o.mach.HandleMemberEvent(ctx, evt)
	case event.StateHistoryVisibility:
		o.mach.HandleHistoryVisibility(ctx, evt)
	}
}

func (o *olm) decrypt(ctx context.Context, evt *event.Event) (*event.Event, error) {
	d, err := o.mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) {
		return nil, fmt.Errorf("%w: %w", errNoKey, err)
	}
	if err != nil {
		return nil, err
	}
	if err := d.Content.ParseRaw(d.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil, fmt.Errorf("the decrypted content: %w", err)
	}
	return d, nil
}

func (o *olm) requestKey(ctx context.Context, evt *event.Event) {
	c, ok := evt.Content.Parsed.(*event.EncryptedEventContent)
	if !ok {
		return
	}
	dev := c.DeviceID
	if dev == "" {
		dev = "*"
	}
	_ = o.mach.SendRoomKeyRequest(ctx, evt.RoomID, c.SenderKey, c.SessionID, "", map[id.UserID][]id.DeviceID{
		evt.Sender: {dev}, o.cli.UserID: {"*"},
	})
}

func (o *olm) encrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (*event.EncryptedEventContent, error) {
	o.enc.Lock()
	defer o.enc.Unlock()
	if ok, _ := o.states.IsEncrypted(ctx, room); !ok {
		// Known from the server (encryptedRoom), not yet from a sync.
		_ = o.states.SetEncryptionEvent(ctx, room, &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1})
	}
	out, err := o.mach.EncryptMegolmEvent(ctx, room, typ, content)
	if !crypto.IsShareError(err) {
		return out, err
	}
	if fetched, _ := o.states.HasFetchedMembers(ctx, room); !fetched {
		if _, err := o.cli.Members(ctx, room); err != nil {
			return nil, classify(err, "listing the members of "+string(room))
		}
		_ = o.states.MarkMembersFetched(ctx, room)
	}
	members, err := o.states.GetRoomJoinedOrInvitedMembers(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("the members of %s: %w", room, err)
	}
	if err := o.mach.ShareGroupSession(ctx, room, members); err != nil {
		return nil, fmt.Errorf("sharing the room key of %s: %w", room, err)
	}
	return o.mach.EncryptMegolmEvent(ctx, room, typ, content)
}

func (o *olm) close() {
	if o.mach != nil {
		o.mach.Destroy()
	}
	if o.db != nil {
		_ = o.db.Close()
	}
}

// zerologWriter passes what mautrix logs (zerolog JSON lines) to the
// adapter's slog logger.
type zerologWriter struct{ log *slog.Logger }

func (w zerologWriter) Write(p []byte) (int, error) {
	var m map[string]any
	if json.Unmarshal(p, &m) != nil {
		return len(p), nil
	}
	level := slog.LevelWarn
	switch m[zerolog.LevelFieldName] {
	case "error", "fatal", "panic":
		level = slog.LevelError
	case "info":
		level = slog.LevelInfo
	case "debug", "trace":
		level = slog.LevelDebug
	}
	msg, _ := m[zerolog.MessageFieldName].(string)
	attrs := make([]any, 0, 2*len(m))
	for k, v := range m {
		if k != zerolog.LevelFieldName && k != zerolog.MessageFieldName {
			attrs = append(attrs, k, v)
		}
	}
	w.log.Log(context.Background(), level, "mautrix crypto: "+msg, attrs...)
	return len(p), nil
}
