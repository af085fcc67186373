# xmppgw. `make test` installs Prosody and ejabberd (apt-get) if missing:
# the end-to-end tests run real servers.
GO ?= go

.PHONY: all build test demo vet clean

all: vet build

build:
	$(GO) build -o bin/xmppgw ./cmd/xmppgw

test:
	bash deploy/install-deps.sh prosody ejabberd
	$(GO) test -race -count=1 ./...

demo:
	bash deploy/demo/demo.sh

vet:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
