# dtls — see README.md. `make test` installs what the tests need (as root).
SHELL := /bin/bash
GO ?= go
PKG := github.com/dtls-tool/dtls
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X $(PKG)/cmd.version=$(VERSION) -X $(PKG)/cmd.commit=$(COMMIT) -X $(PKG)/cmd.date=$(DATE)
PREFIX ?= /usr/local
FUZZTIME ?= 10s

.PHONY: all build deps test lint fuzz bench demo install clean
all: build

build: bin/dtls
bin/dtls: $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/dtls

deps:
	@./scripts/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

# The tests run against a real dockerd (started by the tests, under /tmp);
# under CI=true a missing dockerd fails them instead of skipping.
test: deps lint
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -run '^$$' -fuzz FuzzMerge -fuzztime $(FUZZTIME) ./daemonconfig

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzMerge -fuzztime 5m ./daemonconfig

bench: build
	@./scripts/deps.sh --bench
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/cmdbench -dtls bin/dtls

demo: build deps
	./scripts/demo.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/dtls $(DESTDIR)$(PREFIX)/bin/dtls

clean:
	rm -rf bin .sandbox
