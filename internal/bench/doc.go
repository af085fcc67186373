// Package bench holds the system benchmark behind `make bench`: xmppgw and a
// thin baseline gateway (./baseline), each run in turn through the same real
// Prosody, the same go-xmpp clients, the fake Twilio API and the same load
// generator, so that the only difference between the two columns of its
// table is the gateway. Its test files carry the build tag "bench" and are
// not part of `make test`:
//
//	go test -tags bench -run TestBench -v -timeout 15m ./internal/bench/
//	go test -tags bench -run TestBench -v ./internal/bench/ -msgs 2000 -systems baseline,xmppgw
//
// What it measures, how, and the numbers: docs/performance.md.
package bench
