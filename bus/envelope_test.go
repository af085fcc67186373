package bus_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/bus"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// ts is a fixed time with sub-second precision, so that the round trip has to
// keep nanoseconds.
var ts = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// messageEnvelope is the example in docs/bus.md and testdata/message.json.
func messageEnvelope() *bus.Envelope {
	return &bus.Envelope{
		V:       bus.Version,
		Kind:    bus.KindMessage,
		ID:      "T6Ydl0VZqs8GDqwBXNR1mC",
		Gateway: "sms",
		Time:    time.Date(2026, 11, 24, 10, 15, 0, 123e6, time.UTC),
		User:    "alice@example.com/phone",
		Contact: "+15551234567",
		Message: &bus.Message{
			ID:      "a1b2c3",
			Body:    "Running late, there in 10",
			Media:   []bus.Media{{URL: "https://files.example.com/x.jpg", Type: "image/jpeg", Size: 48213}},
			Thread:  "t-42",
			Receipt: true,
		},
	}
}

func statusEnvelope() *bus.Envelope {
	return &bus.Envelope{
		V:       bus.Version,
		Kind:    bus.KindStatus,
		ID:      "ev-0002",
		Gateway: "sms",
		Time:    ts,
		User:    "alice@localhost/phone",
		Contact: "+15551234567",
		Status:  &bus.Status{Ref: "m1", State: bus.StateFailed, Code: "30003", Reason: "unreachable handset"},
	}
}

func errorEnvelope() *bus.Envelope {
	return &bus.Envelope{
		V:       bus.Version,
		Kind:    bus.KindError,
		ID:      "ev-0003",
		Gateway: "sms",
		Time:    ts,
		User:    "alice@localhost/phone",
		Contact: "12345",
		Error:   &bus.Error{Ref: "m1", Condition: "jid-malformed", Type: "modify", Text: "not a phone number", Code: "21211"},
	}
}

// equalEnvelope compares two envelopes as values: times by instant (the
// location pointer differs between decodes) and empty slices like nil ones
// (omitempty drops "media": [] on the way out).
func equalEnvelope(a, b *bus.Envelope) bool {
	if a == nil || b == nil {
		return a == b
	}
	if !a.Time.Equal(b.Time) {
		return false
	}
	ca, cb := *a, *b
	ca.Time, cb.Time = time.Time{}, time.Time{}
	ca.Message, cb.Message = normMessage(a.Message), normMessage(b.Message)
	return reflect.DeepEqual(ca, cb)
}

func normMessage(m *bus.Message) *bus.Message {
	if m == nil {
		return nil
	}
	c := *m
	if len(c.Media) == 0 {
		c.Media = nil
	}
	return &c
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		env  *bus.Envelope
	}{
		{"message with media, thread and receipt", messageEnvelope()},
		{"message with nanoseconds and two attachments", &bus.Envelope{
			V: bus.Version, Kind: bus.KindMessage, ID: "ev-0005", Gateway: "sms", Time: ts,
			User: "alice@localhost/phone", Contact: "+15551234567", Message: &bus.Message{
				ID: "m2", Body: "two files", Thread: "t-1", Receipt: true,
				Media: []bus.Media{{URL: "https://upload.example/a.jpg", Type: "image/jpeg", Size: 1}, {URL: "https://upload.example/b.txt"}},
			},
		}},
		{"plain message", &bus.Envelope{
			V: bus.Version, Kind: bus.KindMessage, ID: "ev-0004", Gateway: "irc", Time: ts,
			User: "bob@localhost", Contact: "#chan", Message: &bus.Message{Body: "hi"},
		}},
		{"status", statusEnvelope()},
		{"error", errorEnvelope()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := bus.Encode(tt.env)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := bus.Decode(data)
			if err != nil {
				t.Fatalf("Decode(%s): %v", data, err)
			}
			if !equalEnvelope(got, tt.env) {
				t.Errorf("round trip changed the envelope:\n got %+v\nwant %+v\njson %s", got, tt.env, data)
			}
		})
	}
}

func TestEncodeSetsVersion(t *testing.T) {
	e := messageEnvelope()
	e.V = 0
	data, err := bus.Encode(e)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if e.V != bus.Version {
		t.Errorf("Encode left V = %d, want %d", e.V, bus.Version)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["v"] != float64(bus.Version) {
		t.Errorf(`"v" on the wire = %v, want %d`, raw["v"], bus.Version)
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	e := messageEnvelope()
	e.User = ""
	data, err := bus.Encode(e)
	if !errors.Is(err, bus.ErrInvalidEnvelope) {
		t.Fatalf("Encode(no user) = %q, %v; want ErrInvalidEnvelope", data, err)
	}
	if data != nil {
		t.Errorf("Encode returned data with an error: %q", data)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*bus.Envelope)
		want   []string // substrings of the error; none means valid
	}{
		{"valid message", func(*bus.Envelope) {}, nil},
		{"missing v", func(e *bus.Envelope) { e.V = 0 }, []string{`"v"`}},
		{"negative v", func(e *bus.Envelope) { e.V = -1 }, []string{`"v"`}},
		{"v newer than supported", func(e *bus.Envelope) { e.V = bus.Version + 1 },
			[]string{fmt.Sprintf("version %d", bus.Version+1), fmt.Sprintf("supported version %d", bus.Version)}},
		{"missing id", func(e *bus.Envelope) { e.ID = "" }, []string{`"id"`}},
		{"missing gateway", func(e *bus.Envelope) { e.Gateway = "" }, []string{`"gateway"`}},
		{"missing user", func(e *bus.Envelope) { e.User = "" }, []string{`"user"`}},
		{"message from the gateway itself (no contact)", func(e *bus.Envelope) { e.Contact = "" }, nil},
		{"groupchat without room", func(e *bus.Envelope) { e.Contact, e.Message.Type = "", bus.TypeGroupchat },
			[]string{`without "contact"`}},
		{"status without contact", func(e *bus.Envelope) {
			e.Kind, e.Contact, e.Message, e.Status = bus.KindStatus, "", nil, &bus.Status{Ref: "m1", State: bus.StateDelivered}
		}, []string{`"contact"`}},
		{"unknown message type", func(e *bus.Envelope) { e.Message.Type = "headline" }, []string{`unknown message type "headline"`}},
		{"valid groupchat with subject", func(e *bus.Envelope) {
			subject := ""
			e.Contact, e.Message.Type, e.Message.Nick, e.Message.Subject = "#go", bus.TypeGroupchat, "alice", &subject
		}, nil},
		{"valid presence", func(e *bus.Envelope) {
			e.Kind, e.Contact, e.Message, e.Presence = bus.KindPresence, "#go", nil, &bus.Presence{Nick: "alice", Self: true}
		}, nil},
		{"presence without payload", func(e *bus.Envelope) { e.Kind = bus.KindPresence },
			[]string{`kind "presence" without "presence"`}},
		{"unknown presence type", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Presence = bus.KindPresence, nil, &bus.Presence{Nick: "a", Type: "subscribe"}
		}, []string{`unknown presence type "subscribe"`}},
		{"presence error without condition", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Presence = bus.KindPresence, nil, &bus.Presence{Nick: "a", Type: bus.PresenceError}
		}, []string{`"condition"`}},
		{"no payload", func(e *bus.Envelope) { e.Message = nil }, []string{"exactly one", "found 0"}},
		{"two payloads", func(e *bus.Envelope) { e.Status = &bus.Status{Ref: "m1", State: bus.StateSent} },
			[]string{"exactly one", "found 2"}},
		{"three payloads", func(e *bus.Envelope) {
			e.Status = &bus.Status{Ref: "m1", State: bus.StateSent}
			e.Error = &bus.Error{Condition: "bad-request"}
		}, []string{"found 3"}},
		{"kind status with message payload", func(e *bus.Envelope) { e.Kind = bus.KindStatus },
			[]string{`kind "status" without "status"`}},
		{"kind error with message payload", func(e *bus.Envelope) { e.Kind = bus.KindError },
			[]string{`kind "error" without "error"`}},
		{"kind message with status payload", func(e *bus.Envelope) {
			e.Message, e.Status = nil, &bus.Status{Ref: "m1", State: bus.StateSent}
		}, []string{`kind "message" without "message"`}},
		{"unknown kind", func(e *bus.Envelope) { e.Kind = "sticker" }, []string{`unknown kind "sticker"`}},
		{"valid reaction", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Reaction = bus.KindReaction, nil, &bus.Reaction{ID: "m1", Emoji: []string{"👍"}}
		}, nil},
		{"reaction removing all", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Reaction = bus.KindReaction, nil, &bus.Reaction{ID: "m1"}
		}, nil},
		{"reaction without id", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Reaction = bus.KindReaction, nil, &bus.Reaction{Emoji: []string{"👍"}}
		}, []string{`reaction needs "id"`}},
		{"reaction of unknown type", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Reaction = bus.KindReaction, nil, &bus.Reaction{ID: "m1", Type: "headline"}
		}, []string{`unknown type "headline"`}},
		{"kind reaction with message payload", func(e *bus.Envelope) { e.Kind = bus.KindReaction },
			[]string{`kind "reaction" without "reaction"`}},
		{"valid retraction", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Retraction = bus.KindRetraction, nil, &bus.Retraction{ID: "m1"}
		}, nil},
		{"retraction without id", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Retraction = bus.KindRetraction, nil, &bus.Retraction{}
		}, []string{`retraction needs "id"`}},
		{"valid marker", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Marker = bus.KindMarker, nil, &bus.Marker{State: bus.MarkerDisplayed, ID: "m1"}
		}, nil},
		{"marker of unknown state", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Marker = bus.KindMarker, nil, &bus.Marker{State: "acknowledged", ID: "m1"}
		}, []string{`unknown marker state "acknowledged"`}},
		{"marker without id", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Marker = bus.KindMarker, nil, &bus.Marker{State: bus.MarkerReceived}
		}, []string{`marker needs "id"`}},
		{"valid typing", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Typing = bus.KindTyping, nil, &bus.Typing{State: bus.TypingComposing}
		}, nil},
		{"typing of unknown state", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Typing = bus.KindTyping, nil, &bus.Typing{State: "thinking"}
		}, []string{`unknown typing state "thinking"`}},
		{"reply without id", func(e *bus.Envelope) { e.Message.ReplyTo = &bus.ReplyTo{Quote: "q"} },
			[]string{`reply_to needs "id"`}},
		{"two new payloads", func(e *bus.Envelope) {
			e.Kind, e.Message = bus.KindTyping, nil
			e.Typing, e.Marker = &bus.Typing{State: bus.TypingActive}, &bus.Marker{State: bus.MarkerReceived, ID: "m"}
		}, []string{"exactly one", "found 2"}},
		{"empty kind", func(e *bus.Envelope) { e.Kind = "" }, []string{`unknown kind ""`}},
		{"status without ref", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Status = bus.KindStatus, nil, &bus.Status{State: bus.StateDelivered}
		}, []string{`"ref"`, `"state"`}},
		{"status without state", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Status = bus.KindStatus, nil, &bus.Status{Ref: "m1"}
		}, []string{`"ref"`, `"state"`}},
		{"valid status", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Status = bus.KindStatus, nil, &bus.Status{Ref: "m1", State: bus.StateDelivered}
		}, nil},
		{"valid push", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Contact, e.Push = bus.KindPush, nil, "n1", &bus.Push{Node: "n1", Count: 1, Sender: "bob@example.com", Body: "hi"}
		}, nil},
		{"push without node", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Contact, e.Push = bus.KindPush, nil, "n1", &bus.Push{Count: 1}
		}, []string{`push needs "node"`}},
		{"push for another node than its contact", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Contact, e.Push = bus.KindPush, nil, "n1", &bus.Push{Node: "n2"}
		}, []string{`push needs "node"`}},
		{"push without payload", func(e *bus.Envelope) { e.Kind, e.Message = bus.KindPush, nil },
			[]string{"exactly one", "found 0"}},
		{"kind push with message payload", func(e *bus.Envelope) { e.Kind = bus.KindPush },
			[]string{`kind "push" without "push"`}},
		{"error without condition", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Error = bus.KindError, nil, &bus.Error{Ref: "m1", Text: "nope"}
		}, []string{`"condition"`}},
		{"valid error without ref", func(e *bus.Envelope) {
			e.Kind, e.Message, e.Error = bus.KindError, nil, &bus.Error{Condition: "service-unavailable"}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := messageEnvelope()
			tt.mutate(e)
			err := e.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tt.want)
			}
			if !errors.Is(err, bus.ErrInvalidEnvelope) {
				t.Errorf("Validate() = %v, does not wrap ErrInvalidEnvelope", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			// Decode must refuse the same envelope when it arrives as JSON.
			data, merr := json.Marshal(e)
			if merr != nil {
				t.Fatal(merr)
			}
			if _, derr := bus.Decode(data); !errors.Is(derr, bus.ErrInvalidEnvelope) {
				t.Errorf("Decode(%s) = %v, want ErrInvalidEnvelope", data, derr)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid, err := bus.Encode(messageEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	// Trailing white space is valid JSON, so padding with it reaches any size
	// without changing the envelope.
	pad := func(n int) []byte {
		return append(bytes.Clone(valid), bytes.Repeat([]byte(" "), n-len(valid))...)
	}
	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"empty input", nil, ""},
		{"not JSON", []byte("hello, world"), ""},
		{"JSON array", []byte(`[1,2,3]`), ""},
		{"JSON null", []byte(`null`), `"v"`},
		{"truncated", valid[:len(valid)/2], ""},
		{"trailing garbage", append(bytes.Clone(valid), "{}"...), ""},
		{"wrong type for v", []byte(`{"v":"1","kind":"message","id":"x","gateway":"g","user":"u","contact":"c","message":{}}`), ""},
		{"bad timestamp", []byte(`{"v":1,"kind":"message","id":"x","gateway":"g","ts":"yesterday","user":"u","contact":"c","message":{}}`), ""},
		{"v from the future", []byte(`{"v":2,"kind":"message","id":"x","gateway":"g","user":"u","contact":"c","message":{}}`), "version 2"},
		{"one byte over the limit", pad(bus.MaxEnvelopeSize + 1), fmt.Sprint(bus.MaxEnvelopeSize)},
		{"far over the limit", bytes.Repeat([]byte("x"), 2*bus.MaxEnvelopeSize), fmt.Sprint(bus.MaxEnvelopeSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := bus.Decode(tt.data)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", e)
			}
			if e != nil {
				t.Errorf("Decode returned an envelope with error %v", err)
			}
			if !errors.Is(err, bus.ErrInvalidEnvelope) {
				t.Errorf("Decode error %v does not wrap ErrInvalidEnvelope", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode error %q does not mention %q", err, tt.want)
			}
		})
	}

	t.Run("exactly at the limit", func(t *testing.T) {
		e, err := bus.Decode(pad(bus.MaxEnvelopeSize))
		if err != nil {
			t.Fatalf("Decode of %d bytes: %v", bus.MaxEnvelopeSize, err)
		}
		if !equalEnvelope(e, messageEnvelope()) {
			t.Errorf("Decode = %+v, want %+v", e, messageEnvelope())
		}
	})
}

// TestGoldenMessage pins the wire format of a message envelope; docs/bus.md
// documents this file. Run with -update after a deliberate format change.
func TestGoldenMessage(t *testing.T) {
	const golden = "testdata/message.json"
	got, err := bus.Encode(messageEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		var buf bytes.Buffer
		if err := json.Indent(&buf, got, "", "  "); err != nil {
			t.Fatal(err)
		}
		buf.WriteByte('\n')
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}

	// Writing: Encode produces the golden document (field names, nesting,
	// omitted empties, time format), ignoring white space and key order.
	if g, w := normJSON(t, got), normJSON(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("Encode does not match %s:\n got %s\nwant %s", golden, got, bytes.TrimSpace(want))
	}
	// Reading: the golden document decodes to the same value.
	e, err := bus.Decode(want)
	if err != nil {
		t.Fatalf("Decode(%s): %v", golden, err)
	}
	if !equalEnvelope(e, messageEnvelope()) {
		t.Errorf("Decode(%s) = %+v, want %+v", golden, e, messageEnvelope())
	}
}

// TestDocsExample keeps the first example in docs/bus.md, which adapter
// authors copy, identical to the golden file.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/bus.md")
	if errors.Is(err, os.ErrNotExist) {
		t.Fatal("docs/bus.md not present: the wire format must be documented")
	}
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(doc, []byte("```json\n"))
	example, _, closed := bytes.Cut(rest, []byte("```"))
	if !ok || !closed {
		t.Fatal("docs/bus.md has no ```json example")
	}
	golden, err := os.ReadFile("testdata/message.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normJSON(t, example), normJSON(t, golden)) {
		t.Errorf("the envelope example in docs/bus.md differs from testdata/message.json:\n%s", example)
	}
}

func normJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	return v
}

func FuzzDecode(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/")
	}
	for _, name := range seeds {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, e := range []*bus.Envelope{statusEnvelope(), errorEnvelope()} {
		data, err := bus.Encode(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"v":1,"kind":"message","id":"x","gateway":"g","ts":"2025-01-01T00:00:00+05:30","user":"u","contact":"c","message":{"media":[]}}`))
	f.Add([]byte(`{"v":1,"V":2,"kind":"status","id":"x","gateway":"g","user":"u","contact":"c","status":{"ref":"r","state":"s"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))

	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := bus.Decode(data)
		if err != nil {
			if !errors.Is(err, bus.ErrInvalidEnvelope) {
				t.Fatalf("Decode error %v does not wrap ErrInvalidEnvelope", err)
			}
			return
		}
		out, err := bus.Encode(e)
		if err != nil {
			t.Fatalf("Decode accepted %q but Encode of the result failed: %v", data, err)
		}
		again, err := bus.Decode(out)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) = %v; encoded %s", data, err, out)
		}
		if !equalEnvelope(e, again) {
			t.Fatalf("round trip changed the envelope:\nfirst  %+v\nsecond %+v\nencoded %s", e, again, out)
		}
		// The encoding is a fixed point after one normalisation.
		out2, err := bus.Encode(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
	})
}

// TestUnknownKindDecodes: an envelope of a kind from a newer version is
// refused, but returned, so its reader can answer the sender.
func TestUnknownKindDecodes(t *testing.T) {
	data := []byte(`{"v":1,"kind":"sticker","id":"e1","gateway":"sms","ts":"2026-11-24T10:15:00Z","user":"alice@example.com/phone","contact":"+15551234567","sticker":{"pack":"x"}}`)
	e, err := bus.Decode(data)
	if !errors.Is(err, bus.ErrUnknownKind) || !errors.Is(err, bus.ErrInvalidEnvelope) {
		t.Fatalf("Decode = %v, want ErrUnknownKind wrapped in ErrInvalidEnvelope", err)
	}
	if e == nil || e.ID != "e1" || e.User != "alice@example.com/phone" || e.Contact != "+15551234567" || e.Kind != "sticker" {
		t.Fatalf("Decode returned %+v, want the envelope's addressing", e)
	}
	// Any other invalid envelope returns no envelope.
	if e, err := bus.Decode([]byte(`{"v":1,"kind":"message","id":"e1","gateway":"sms","user":"u"}`)); e != nil || err == nil {
		t.Fatalf("Decode of an invalid message = %+v, %v; want nil and an error", e, err)
	}
}

// eventEnvelopes are the examples of the event kinds in docs/bus.md, each
// kept in testdata/<name>.json.
func eventEnvelopes() map[string]*bus.Envelope {
	base := func(kind bus.Kind, id string) *bus.Envelope {
		return &bus.Envelope{V: bus.Version, Kind: kind, ID: id, Gateway: "sms",
			Time: time.Date(2026, 11, 24, 10, 16, 0, 0, time.UTC), User: "alice@example.com/phone", Contact: "+15551234567"}
	}
	reply := base(bus.KindMessage, "T6Ydl0VZqs8GDqwBXNR1mD")
	reply.Message = &bus.Message{ID: "d4e5f6", Body: "Ok, see you then", ReplyTo: &bus.ReplyTo{ID: "xg-SMa1b2", Quote: "Running late, there in 10"}}
	correction := base(bus.KindMessage, "T6Ydl0VZqs8GDqwBXNR1mE")
	correction.Message = &bus.Message{ID: "a1b2c4", Body: "Running late, there in 15", Replace: "a1b2c3"}
	reaction := base(bus.KindReaction, "T6Ydl0VZqs8GDqwBXNR1mF")
	reaction.Reaction = &bus.Reaction{ID: "a1b2c3", Emoji: []string{"👍", "😂"}}
	retraction := base(bus.KindRetraction, "T6Ydl0VZqs8GDqwBXNR1mG")
	retraction.Retraction = &bus.Retraction{ID: "a1b2c3"}
	marker := base(bus.KindMarker, "T6Ydl0VZqs8GDqwBXNR1mH")
	marker.Marker = &bus.Marker{State: bus.MarkerDisplayed, ID: "xg-SMa1b2"}
	typing := base(bus.KindTyping, "T6Ydl0VZqs8GDqwBXNR1mI")
	typing.Typing = &bus.Typing{State: bus.TypingComposing}
	push := base(bus.KindPush, "T6Ydl0VZqs8GDqwBXNR1mJ")
	push.Gateway, push.User, push.Contact = "push", "alice@example.com", "vbqo2hlrbyzfbm2cu6qbmhbhka"
	push.Push = &bus.Push{Node: push.Contact, Count: 1}
	return map[string]*bus.Envelope{
		"reply": reply, "correction": correction, "reaction": reaction,
		"retraction": retraction, "marker": marker, "typing": typing, "push": push,
	}
}

// TestGoldenEvents keeps each event example in testdata and in docs/bus.md
// identical to what Encode writes, and Decode reads it back.
func TestGoldenEvents(t *testing.T) {
	doc, err := os.ReadFile("../docs/bus.md")
	if err != nil {
		t.Fatal(err)
	}
	var docExamples []any
	for rest := doc; ; {
		var ok bool
		_, rest, ok = bytes.Cut(rest, []byte("```json\n"))
		if !ok {
			break
		}
		var example []byte
		example, rest, _ = bytes.Cut(rest, []byte("```"))
		docExamples = append(docExamples, normJSON(t, example))
	}
	for name, e := range eventEnvelopes() {
		t.Run(name, func(t *testing.T) {
			golden := "testdata/" + name + ".json"
			got, err := bus.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				var buf bytes.Buffer
				if err := json.Indent(&buf, got, "", "  "); err != nil {
					t.Fatal(err)
				}
				buf.WriteByte('\n')
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normJSON(t, got), normJSON(t, want)) {
				t.Errorf("Encode does not match %s:\n got %s\nwant %s", golden, got, want)
			}
			back, err := bus.Decode(want)
			if err != nil {
				t.Fatalf("Decode(%s): %v", golden, err)
			}
			if !equalEnvelope(back, e) {
				t.Errorf("Decode(%s) = %+v, want %+v", golden, back, e)
			}
			found := false
			for _, ex := range docExamples {
				found = found || reflect.DeepEqual(ex, normJSON(t, want))
			}
			if !found {
				t.Errorf("docs/bus.md has no ```json example equal to %s", golden)
			}
		})
	}
}
