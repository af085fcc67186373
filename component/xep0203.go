package component

import "time"

// XEP-0203 Delayed Delivery. A message the network received earlier than
// the component writes it — a room's history, given to the client that
// joins — carries when it came (bus.Message.Delay), from the room.

type delayOut struct {
	From  string `xml:"from,attr,omitempty"`
	Stamp string `xml:"stamp,attr"`
}

func delayOf(t *time.Time, from string) *delayOut {
	if t == nil || t.IsZero() {
		return nil
	}
	return &delayOut{From: from, Stamp: t.UTC().Format("2006-01-02T15:04:05.000Z")}
}
