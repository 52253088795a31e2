GO ?= go

# Packages whose benchmarks `make bench` runs together, so the ratio
# printers compare backends measured in the same run.
BENCH_PKGS ?= ./plugins/... ./host/... ./server/store ./cmd/topgun-server
BENCHTIME ?= 200ms
# How long `make fuzz` runs each Fuzz target, and where it looks for them.
FUZZTIME ?= 30s
FUZZ_PKGS ?= ./...
# Packages that must also build for GOOS=wasip1 GOARCH=wasm (only the
# directories that exist).
WASM_PKGS = ./abi/... ./plugins/null $(if $(wildcard sdk),./sdk/...)
# Main packages of wasm storage plugins, built by `make wasm` into bin/plugins.
WASM_PLUGINS ?= examples/plugins/null examples/plugins/logstore/cmd/logstore
# The C compiler of the C example plugin (examples/plugins/c/memkv), built by
# `make wasm` when it can target wasm32-wasi.
CLANG ?= clang
# Kills per backend in `make crash-test` (make test runs 20).
CRASH_KILLS ?= 200

.PHONY: all build run test bench fuzz lint check wasm clean crash-test

all: build

build:
	$(GO) build -o bin/topgun-server ./cmd/topgun-server
	@if [ -d cmd/topgun ]; then echo "$(GO) build -o bin/topgun ./cmd/topgun"; $(GO) build -o bin/topgun ./cmd/topgun; fi

# Starts the server on the default redb backend (./topgun.redb) on port 8080.
# Settings come from the environment, e.g. `PORT=9090 make run`.
run: export TOPGUN_NO_AUTH = 1
run:
	$(GO) build -o bin/topgun-server ./cmd/topgun-server
	./bin/topgun-server

# The test command CI runs (.ci/run). PostgreSQL tests skip without a
# database unless TOPGUN_REQUIRE_POSTGRES=1.
test:
	$(GO) test -race -timeout 25m ./...

# The long crash test: SIGKILLs a writer CRASH_KILLS times per durable
# backend (redb, postgres, the example plugin) and fails if any
# acknowledged write is missing, or an acknowledged overwrite or delete is
# undone after a restart.
crash-test:
	TOPGUN_CRASH_KILLS=$(CRASH_KILLS) $(GO) test -count=1 -timeout 60m -run '^TestCrash_' -v ./server/store

bench:
	$(GO) test -run '^$$' -bench . -benchtime=$(BENCHTIME) $(BENCH_PKGS)

# Runs every Fuzz target of FUZZ_PKGS for FUZZTIME each; targets are
# discovered with `go test -list`, so new ones are picked up. A package whose
# tests do not build fails the run.
fuzz:
	@set -e; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $(FUZZ_PKGS)); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg 2>&1) || { echo "$$list"; exit 1; }; \
		for target in $$(echo "$$list" | grep '^Fuzz'); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# lint, the wasip1 cross-build, and a tidy check: `go mod tidy -diff` prints
# what tidy would change and writes nothing, so go.mod and go.sum stay as
# they are.
check: lint
	GOOS=wasip1 GOARCH=wasm $(GO) build $(WASM_PKGS)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit the result"; exit 1; }

wasm:
ifeq ($(strip $(WASM_PLUGINS)),)
	@echo "wasm: no plugins to build"
else
	@mkdir -p bin/plugins
	@set -e; for dir in $(WASM_PLUGINS); do \
		echo "GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/plugins/$$(basename $$dir).wasm ./$$dir"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/plugins/$$(basename $$dir).wasm ./$$dir; \
	done
endif
	@mkdir -p bin/plugins
	@probe=$$(mktemp -d); \
	if printf 'int probe(void) { return 0; }\n' | $(CLANG) --target=wasm32-wasi -mexec-model=reactor -x c - -o $$probe/probe.wasm >/dev/null 2>&1; then \
		rm -rf $$probe; \
		echo "$(CLANG) @examples/plugins/c/memkv/flags.rsp -o bin/plugins/memkv.wasm examples/plugins/c/memkv/memkv.c"; \
		$(CLANG) @examples/plugins/c/memkv/flags.rsp -o bin/plugins/memkv.wasm examples/plugins/c/memkv/memkv.c; \
	else \
		rm -rf $$probe; \
		echo "wasm: skipping the C plugin: clang with wasm32-wasi support not found (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)"; \
	fi

clean:
	rm -rf bin
