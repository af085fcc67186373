# xmppgw. `make test` installs Prosody and ejabberd (apt-get) if missing:
# the end-to-end tests run real servers.
GO ?= go

.PHONY: all build test demo vet bench clean

all: vet build

build:
	$(GO) build -o bin/xmppgw ./cmd/xmppgw

test:
	bash deploy/install-deps.sh prosody ejabberd
	$(GO) test -race -count=1 ./...

demo:
	bash deploy/demo/demo.sh

# End-to-end latency, start-up and memory through real Prosody (not part of
# `make test`); see README "Where the numbers come from".
bench:
	bash deploy/install-deps.sh prosody
	$(GO) test -run XXX -bench . -benchtime 1000x ./internal/e2e/

vet:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
