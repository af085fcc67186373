package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ExternalAdapter is the adapter ID of a gateway whose adapter runs as its own
// process, in any language, and speaks the bus contract (docs/bus.md): the
// gateway serves the domain and the bus, but runs no adapter in-process.
const ExternalAdapter = "external"

// External is the block gateways.<name>.external. An external adapter
// declares nothing in-process, so what it is and what it can carry are
// configured here.
type External struct {
	// Type is the XEP-0030 identity type of the gateway (category
	// "gateway"): "sms", "irc", … from the XMPP registrar's list. Required.
	Type string `koanf:"type"`
	// ContactType is the identity type (category "client") of the network's
	// contacts: "sms" for phone numbers, "pc" (the default) when unsure.
	ContactType string `koanf:"contact_type"`
	// Name is the human-readable identity name shown by clients.
	Name string `koanf:"name"`
	// Media: attachments travel to the adapter as media (XEP-0066).
	Media bool `koanf:"media"`
	// Receipts: the adapter reports delivery (status envelopes), so the
	// component advertises XEP-0184.
	Receipts bool `koanf:"receipts"`
	// Rooms: the network has group conversations, served as XEP-0045 rooms;
	// a contact address that starts with one of RoomPrefixes is a room.
	Rooms        bool     `koanf:"rooms"`
	RoomPrefixes []string `koanf:"room_prefixes"`
	// Features are the conversation features the adapter carries (an
	// in-process adapter declares them by its interfaces): any of
	// corrections, replies, reactions, retractions, markers, typing. The
	// component advertises and sends the adapter exactly these.
	Features []string `koanf:"features"`
}

// ExternalFeatures are the names Features may hold (gateways.FeatureNames).
var ExternalFeatures = []string{"corrections", "replies", "reactions", "retractions", "markers", "typing"}

// identityType is a disco identity type as the registrar spells them.
var identityType = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Validate checks the block; each line of the error starts with its key.
func (e *External) Validate() error {
	var errs []error
	if e.Type == "" {
		errs = append(errs, errors.New(`type: required: the gateway's XEP-0030 identity type, e.g. "sms" or "irc"`))
	} else if !identityType.MatchString(e.Type) {
		errs = append(errs, fmt.Errorf("type: %q is not an identity type (lower-case a-z, 0-9, \".\", \"_\", \"-\")", e.Type))
	}
	if !identityType.MatchString(e.ContactType) {
		errs = append(errs, fmt.Errorf("contact_type: %q is not an identity type (lower-case a-z, 0-9, \".\", \"_\", \"-\"; \"pc\" when unsure)", e.ContactType))
	}
	switch {
	case e.Rooms && len(e.RoomPrefixes) == 0:
		errs = append(errs, errors.New(`room_prefixes: required with rooms: true (how room addresses start, e.g. ["#"])`))
	case !e.Rooms && len(e.RoomPrefixes) > 0:
		errs = append(errs, errors.New("room_prefixes: only used with rooms: true"))
	}
	for i, f := range e.Features {
		if !slices.Contains(ExternalFeatures, f) {
			errs = append(errs, fmt.Errorf("features.%d: unknown feature %q (known: %s)", i, f, strings.Join(ExternalFeatures, ", ")))
		}
	}
	for i, p := range e.RoomPrefixes {
		if p == "" {
			errs = append(errs, errors.New("room_prefixes."+strconv.Itoa(i)+": empty: every address would be a room"))
		}
	}
	return errors.Join(errs...)
}

func newExternal() any { return &External{ContactType: "pc"} }
