# nscap developer tasks. `make test` is THE test command (README, .ci/run).
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 5s
PKGS := ./...
# e2fsprogs: mkfs.ext4 and debugfs, for testutil.RawFS (raw xattr values).
DEB_TEST_PACKAGES := libcap2-bin attr acl uidmap tar libarchive-tools e2fsprogs xz-utils zstd
# Where tests that write capabilities create their files: tmpfs may lack
# security.capability support, so keep them on the disk of the checkout.
export NSCAP_TEST_DIR ?= $(CURDIR)/.testtmp

.PHONY: all build test deps vet fmt-check lint unit unit-unpriv fuzz bench e2e shift-kill man golden clean tidy-check

all: build

build:
	$(GO) build ./...

## test: install missing test packages (as root), then format, vet, lint,
## the race-enabled suite (strict about root when root), the suite again as
## an unprivileged user (when root) and a fuzz smoke. Every stage runs, even
## after one failed (a failing unit must not hide unit-unpriv and fuzz);
## the summary names the failed stages and the exit status is 1 if any did.
## Each stage is also a target of its own.
TEST_STAGES := deps fmt-check tidy-check vet lint unit unit-unpriv fuzz

test:
	@failed=""; summary=""; \
	for s in $(TEST_STAGES); do \
	  echo "=== make $$s"; start=$$SECONDS; \
	  if $(MAKE) --no-print-directory $$s; then r=ok; else r=FAIL; failed="$$failed $$s"; fi; \
	  summary="$$summary$$(printf '%-4s  %-12s %4ds' $$r $$s $$((SECONDS - start)))"$$'\n'; \
	done; \
	echo "=== make test: summary"; printf '%s' "$$summary"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: all $(words $(TEST_STAGES)) stages passed"

deps:
	@missing=""; for p in $(DEB_TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "warning: missing Debian packages:$$missing (run make test as root to install them)" >&2; \
	  fi; \
	fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## lint: golangci-lint v2 with .golangci.yml (govet, staticcheck with all
## checks, errcheck, depguard, forbidigo, gofumpt, goimports...). It is
## pinned in its own tools module, internal/tools/lint/go.mod, to keep its
## ~200 modules out of ours; golangci's staticcheck replaces `go tool staticcheck`.
lint:
	$(GO) tool -modfile=internal/tools/lint/go.mod golangci-lint run $(PKGS)

unit:
	@mkdir -p $(NSCAP_TEST_DIR)
	@if [ "$$(id -u)" = 0 ]; then export NSCAP_TEST_REQUIRE_ROOT=1; fi; \
	$(GO) test -race -count=1 $(PKGS)

## unit-unpriv: as root, run the suite again as the unprivileged user
## nscap-unpriv (scripts/test-unpriv.sh); not root, unit already was that run.
unit-unpriv:
	@if [ "$$(id -u)" = 0 ]; then \
	  GO="$(GO)" bash scripts/test-unpriv.sh; \
	else \
	  echo "unit-unpriv: skipped: not root, so unit already ran the suite unprivileged (euid $$(id -u))"; \
	fi

## fuzz: run every fuzz target for FUZZTIME.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    for try in 1 2 3; do \
	      if $(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) $$pkg >/tmp/nscap-fuzz.log 2>&1; then break; fi; \
	      if [ $$try != 3 ] && grep -q 'context deadline exceeded' /tmp/nscap-fuzz.log && ! grep -q 'Failing input' /tmp/nscap-fuzz.log; then \
	        echo "  the fuzzing engine missed its deadline (a loaded machine; no failing input): again"; continue; \
	      fi; \
	      cat /tmp/nscap-fuzz.log; exit 1; \
	    done; \
	  done; \
	done

bench:
	bash scripts/bench.sh

## shift-kill: the kill test of nscap shift on the 200k-file mktree tree
## (scripts/shift-kill.sh; `make test` runs it on a 3k-entry tree).
shift-kill:
	bash scripts/shift-kill.sh

## e2e: (root; not part of make test) nscap end to end on real trees, checked
## by GNU tar, bsdtar, getcap, getfacl and sha256: a debootstrapped Debian
## shifted and restored into other uid ranges, ping run in a container over
## it, and a generated tree round-tripped byte-exact. See scripts/e2e.sh.
e2e:
	bash scripts/e2e.sh

man:
	$(GO) run ./internal/cli/gendocs -man docs/man

golden:
	$(GO) test ./... -update

tidy-check:
	$(GO) mod tidy -diff

clean:
	rm -rf $(NSCAP_TEST_DIR)
