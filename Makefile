# xmppgw. `make test` installs Prosody, ejabberd, ngircd and Node.js with npm
# (apt-get) if missing, and builds Dendrite once (cached, internal/dendritetest):
# the end-to-end tests run real servers and the JavaScript example adapter.
GO ?= go
# goolm: mautrix's pure-Go Olm for the Matrix adapter's end-to-end
# encryption. Without it mautrix wants cgo and libolm; the adapter then
# builds without encryption (gateways/matrix/crypto_off.go).
TAGS ?= goolm

.PHONY: all build test test-faults test-cluster demo vet vulncheck bench fuzz clean

all: vet build

build:
	$(GO) build -tags $(TAGS) -o bin/xmppgw ./cmd/xmppgw

test:
	bash deploy/install-deps.sh prosody ejabberd ngircd nodejs strace dendrite
	$(GO) test -tags $(TAGS) -race -count=1 ./...

# Fault injection (internal/faults, build tag "faults"): kill -9 of the
# gateway, Prosody and nats-server restarts, Twilio errors and late answers,
# a full and a read-only data disk, with real Prosody, the real binary and
# the fake Twilio API; prints a table of sent/delivered/errors/lost/
# duplicated. About 2.5 minutes; root for the disk scenarios (tmpfs and loop
# mounts). Not part of `make test`; .ci/run runs it after it.
test-faults:
	bash deploy/install-deps.sh prosody
	$(GO) vet -tags faults ./internal/faults/
	$(GO) test -tags faults -count=1 -v -timeout 20m ./internal/faults/

# Beyond one machine (internal/cluster, build tag "cluster"): a cluster of
# three real nats-server processes (streams with 3 replicas), real Prosody,
# the fake Twilio API and xmppgw split by role into separate processes:
# roles sharing the work, kill -9 of the active component (the standby
# takes over), kill -9 of NATS nodes; prints a table of sent/delivered/
# errors/lost/duplicated and the measured failover times (docs/scaling.md).
# About 2.5 minutes. Not part of `make test`; .ci/run runs it after it.
test-cluster:
	bash deploy/install-deps.sh prosody
	$(GO) vet -tags cluster ./internal/cluster/ ./internal/natstest/
	$(GO) test -tags cluster -count=1 -v -timeout 15m ./internal/cluster/

demo:
	bash deploy/demo/demo.sh

# Benchmarks, not part of `make test`; about 3 minutes. First the system
# benchmark (internal/bench, build tag "bench"): xmppgw and a thin baseline
# gateway, each through the same real Prosody, go-xmpp clients and fake
# Twilio; it prints a table with the targets of issue #6 and fails if a
# message is lost or duplicated (docs/performance.md). BENCHFLAGS go to it,
# e.g. BENCHFLAGS='-msgs 2000 -systems baseline,xmppgw'. Then the
# micro-benchmarks, $(BENCHCOUNT) runs each for benchstat, and the
# one-message-at-a-time end-to-end figures (README "Where the numbers come
# from").
BENCHFLAGS ?=
BENCHCOUNT ?= 6

bench:
	bash deploy/install-deps.sh prosody strace
	$(GO) vet -tags bench ./internal/bench/
	$(GO) test -tags bench -count=1 -run '^TestBench$$' -v -timeout 20m ./internal/bench/ $(BENCHFLAGS)
	$(GO) test -p 1 -run XXX -bench . -benchmem -benchtime 500ms -count $(BENCHCOUNT) ./bus/ ./component/
	$(GO) test -run XXX -bench . -benchtime 1000x ./internal/e2e/

# Each fuzz target for $(FUZZTIME); Go fuzzes one target per invocation.
# Failing inputs land in the package's testdata/fuzz/<Target>/, where plain
# `go test` replays them with the committed seeds. A count of executions
# ("20000x"), not a duration: with a duration, Go 1.26's fuzz coordinator
# can fail a target with a bare "context deadline exceeded" and no failing
# input when the time runs out (golang/go#75804, fixed in Go 1.27; seen in
# CI here on 2026-12-05 in telnyx's FuzzWebhook).
FUZZTIME ?= 20000x

fuzz:
	$(GO) test -run XXX -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./bus/
	$(GO) test -run XXX -fuzz '^FuzzOutbound$$' -fuzztime $(FUZZTIME) ./component/
	$(GO) test -run XXX -fuzz '^FuzzEscape$$' -fuzztime $(FUZZTIME) ./component/
	$(GO) test -run XXX -fuzz '^FuzzTranslateAddress$$' -fuzztime $(FUZZTIME) ./gateways/sms/
	$(GO) test -run XXX -fuzz '^FuzzSegments$$' -fuzztime $(FUZZTIME) ./gateways/sms/
	$(GO) test -run XXX -fuzz '^FuzzWebhook$$' -fuzztime $(FUZZTIME) ./gateways/twilio/
	$(GO) test -run XXX -fuzz '^FuzzWebhook$$' -fuzztime $(FUZZTIME) ./gateways/telnyx/
	$(GO) test -run XXX -fuzz '^FuzzParseMessage$$' -fuzztime $(FUZZTIME) ./gateways/irc/
	$(GO) test -run XXX -fuzz '^FuzzSplitText$$' -fuzztime $(FUZZTIME) ./gateways/irc/
	$(GO) test -run XXX -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./gateways/internal/tapback/

# govulncheck against the Go vulnerability database (GOVULNDB, default
# vuln.go.dev). Prints "NOT RUN" and succeeds when the database cannot be
# reached, unless VULNCHECK_REQUIRED=1 (deploy/vulncheck.sh).
vulncheck:
	bash deploy/vulncheck.sh

vet:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	$(GO) vet ./gateways/matrix/

clean:
	rm -rf bin
