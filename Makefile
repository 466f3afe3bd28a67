# dtls — see README.md. `make test` installs what the tests need (as root).
SHELL := /bin/bash
GO ?= go
PKG := github.com/dtls-tool/dtls
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X $(PKG)/cmd.version=$(VERSION) -X $(PKG)/cmd.commit=$(COMMIT) -X $(PKG)/cmd.date=$(DATE)
PREFIX ?= /usr/local
FUZZTIME ?= 25000x

MANDIR ?= $(PREFIX)/share/man/man1
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

.PHONY: all build deps test unit fuzz-short lint cross fuzz stress bench demo install uninstall man completions clean
all: build

build: bin/dtls
bin/dtls: $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/dtls

# The laptop's commands (import, ls, use, env, context, check) run on
# macOS and Windows too: every target must build. Linked as the release
# is (-s -w): every symbol is still resolved, without writing DWARF.
CROSS := darwin/amd64 darwin/arm64 windows/amd64 windows/arm64 linux/arm64
cross:
	@for t in $(CROSS); do \
	  echo "build $$t"; \
	  CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -trimpath -ldflags='-s -w' -o /dev/null ./cmd/dtls || exit 1; \
	done

deps:
	@./scripts/deps.sh

# Dead code: every function of the module must be reachable from a program
# the repo builds (dtls, dtls-docs, the benches), found by
# golang.org/x/tools/cmd/deadcode (a tool dependency in go.mod). A helper
# only tests use belongs in a _test.go file or in a test-only package under
# internal/ (sandbox, pgsandbox, catest, crashtest, fixture), which are not
# reported. DEADCODE_ALLOW lists reports that are let through (extended
# regular expressions, whole lines). deadcode type-checks and builds SSA
# for the whole program from source and spent a third of its CPU
# collecting garbage, for a heap it keeps to the end: it runs without a
# collector (GOGC=off), 22 CPU-seconds down to 17 here for 3.7 GB at its
# peak instead of 3.0, and GOMEMLIMIT starts one only if a larger
# program ever needs more than 6 GiB.
DEADCODE_ALLOW :=
TESTONLY := sandbox|pgsandbox|catest|crashtest|failpoint|fixture|codecheck

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	@set -o pipefail; dead=$$(GOGC=off GOMEMLIMIT=6GiB $(GO) tool deadcode -test=false ./cmd/dtls ./cmd/dtls-docs ./internal/bench/... ./internal/release | \
	  { grep -vE '^internal/($(TESTONLY))/|^($(DEADCODE_ALLOW))$$' || true; }) || exit 1; \
	  if [ -n "$$dead" ]; then echo "unreachable functions (go tool deadcode): remove them, or move test-only ones into _test.go files or internal/:"; echo "$$dead"; exit 1; fi

# The tests run against a real dockerd (started by the tests, under /tmp);
# under CI=true a missing dockerd fails them instead of skipping.
#
# lint, cross, the tests, the short fuzz and the packages' check
# (dist-check) are independent: they run at
# once (the tests mostly wait for dockerd, PostgreSQL and fsync, while lint
# and cross mostly compute), each one's output printed whole when it ends
# (--output-sync), and test fails if any of them does. They run with
# $TMPDIR on a tmpfs of their own (scripts/scratch.sh, as root): on disk,
# the tests' fsyncs and file churn cost a third of the suite's CPU.
#
# Nothing is done twice: cross builds only the platforms dist-check does
# not (it builds DIST_CHECK_TARGETS, twice), and go test's own vet pass is
# off because lint runs go vet, every analyzer of it, on the same packages
# and test files. Every go command builds with -trimpath (GOFLAGS): what
# it compiles no longer depends on where the checkout is, so a fresh clone
# reuses the build cache of any earlier one instead of compiling the whole
# module again for the tests, vet and the programs the tests build (40 to
# 50 CPU-seconds here). The 33 test binaries are linked without DWARF and
# the symbol table (-s -w; stack traces keep their names and lines), and
# only when they changed (scripts/unit.sh, which keeps them between runs):
# go test would link them all again at every run, 23 CPU-seconds with
# -s -w, 34 to 43 without.
test: deps
	@GOFLAGS='-trimpath $(GOFLAGS)' ./scripts/scratch.sh $(MAKE) --no-print-directory -j4 --output-sync=target \
	  CROSS='$(filter-out $(DIST_CHECK_TARGETS),$(CROSS))' UNITFLAGS="-vet=off -ldflags='-s -w'" \
	  lint cross unit fuzz-short dist-check

# go test ./... in two steps, build then run, and the test binaries kept
# in ~/.cache/dtls/test-bin (DTLS_TEST_BIN_DIR) to be linked again only
# when they change: scripts/unit.sh. UNITFLAGS are build flags.
UNITFLAGS ?=
unit:
	UNIT_TIMEOUT=30m ./scripts/unit.sh $(UNITFLAGS)

# A count, not a time: the same work on any machine. One worker: two
# made about as many runs a second here (the coordinator's share) at three
# times the CPU, which the tests running beside it need. Each input that
# reaches new code is shrunk for up to 60 s of runs by default
# (-fuzzminimizetime): a run that found one took up to 80 s instead of 5,
# one CPU busy all along. 100 runs of shrinking are enough for a corpus
# entry; a failing input is still written to testdata/fuzz, less shrunk.
fuzz-short:
	$(GO) test -run '^$$' -fuzz FuzzMerge -fuzztime $(FUZZTIME) -fuzzminimizetime 100x -parallel 1 ./daemonconfig

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
	$(GO) run ./internal/bench/cmdbench -dtls bin/dtls
	$(GO) run ./internal/bench/bulkissue -dtls bin/dtls
	$(GO) run ./internal/bench/authzlat -dtls bin/dtls
	$(GO) run ./internal/bench/gatewaylat -dtls bin/dtls
	$(GO) run ./internal/bench/fleetca -dtls bin/dtls

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
	rm -rf bin .sandbox "$${DTLS_TEST_BIN_DIR:-$${XDG_CACHE_HOME:-$$HOME/.cache}/dtls/test-bin}"

# Release files in dist/ (README "Install"), reproducibly from the
# commit: static binaries for Linux, macOS and Windows on amd64 and
# arm64, .deb and .rpm for Linux, archives, SBOMs, SHA256SUMS. A tree
# with uncommitted changes is refused (DISTFLAGS=-allow-dirty builds it
# anyway, marked -dirty).
.PHONY: dist dist-check
DISTFLAGS ?=
dist:
	$(GO) run ./internal/release -out dist $(DISTFLAGS)

# Two builds of HEAD compared byte for byte, lintian, systemd-analyze
# verify, install and purge in a scratch root (scripts/dist-check.sh).
# The platforms dist-check builds: one of each system, Linux with its
# packages.
DIST_CHECK_TARGETS ?= linux/amd64 darwin/arm64 windows/amd64
dist-check:
	@DIST_CHECK_TARGETS='$(DIST_CHECK_TARGETS)' ./scripts/dist-check.sh
