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

MANDIR ?= $(PREFIX)/share/man/man1
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

.PHONY: all build deps test lint cross fuzz stress bench demo install uninstall man completions clean
all: build

build: bin/dtls
bin/dtls: $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/dtls

# The laptop's commands (import, ls, use, env, context, check) run on
# macOS and Windows too: every target must build.
CROSS := darwin/amd64 darwin/arm64 windows/amd64 windows/arm64 linux/arm64
cross:
	@for t in $(CROSS); do \
	  echo "build $$t"; \
	  CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -trimpath -o /dev/null ./cmd/dtls || exit 1; \
	done

deps:
	@./scripts/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

# The tests run against a real dockerd (started by the tests, under /tmp);
# under CI=true a missing dockerd fails them instead of skipping.
test: deps lint cross
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -run '^$$' -fuzz FuzzMerge -fuzztime $(FUZZTIME) ./daemonconfig

# The kill loop of internal/crashtest, longer: random commands killed with
# SIGKILL at a random instant, each followed by a consistency check.
STRESS_ITERATIONS ?= 3000
stress:
	set -o pipefail; DTLS_KILL_ITERATIONS=$(STRESS_ITERATIONS) $(GO) test -count=1 -timeout 60m -run 'TestKillLoop' -v ./internal/crashtest | tail -n 40

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzMerge -fuzztime 5m ./daemonconfig

bench: build
	@./scripts/deps.sh --bench
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/cmdbench -dtls bin/dtls
	$(GO) run ./bench/bulkissue -dtls bin/dtls
	$(GO) run ./bench/authzlat -dtls bin/dtls
	$(GO) run ./bench/fleetca -dtls bin/dtls

demo: build deps
	./scripts/demo.sh

# Man pages and completion scripts are generated from the command tree by
# cmd/dtls-docs, so they never drift from the flags.
man:
	rm -rf bin/man && $(GO) run ./cmd/dtls-docs man bin/man

completions:
	rm -rf bin/completions && $(GO) run ./cmd/dtls-docs completion bin/completions

install: build man completions
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 bin/dtls $(DESTDIR)$(PREFIX)/bin/dtls
	install -m 0644 bin/man/*.1 $(DESTDIR)$(MANDIR)/
	install -m 0644 bin/completions/dtls.bash $(DESTDIR)$(BASHCOMPDIR)/dtls
	install -m 0644 bin/completions/dtls.zsh $(DESTDIR)$(ZSHCOMPDIR)/_dtls
	install -m 0644 bin/completions/dtls.fish $(DESTDIR)$(FISHCOMPDIR)/dtls.fish

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dtls $(DESTDIR)$(MANDIR)/dtls.1 $(DESTDIR)$(MANDIR)/dtls-*.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/dtls $(DESTDIR)$(ZSHCOMPDIR)/_dtls $(DESTDIR)$(FISHCOMPDIR)/dtls.fish

clean:
	rm -rf bin .sandbox
