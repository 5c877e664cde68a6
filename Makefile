# UltraMCP Durable. `make demo` runs the main job; `make test` runs the suite.
SHELL := /bin/bash
GO ?= go
BIN := bin/ultramcp
RESTATE_SERVER := node_modules/@restatedev/restate-server-linux-x64/bin/restate-server
GOFILES := $(shell find . -name '*.go' -not -path './node_modules/*' 2>/dev/null)

.PHONY: all setup build demo test test-short test-upgrade test-tracing test-storm screenshots jaeger vet lint fmt bench stop clean

all: build

# Pinned restate-server and restate CLI from npm (package-lock.json).
$(RESTATE_SERVER): package.json package-lock.json
	@echo "installing the pinned restate-server and restate CLI from npm…" >&2
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(RESTATE_SERVER)

setup: $(RESTATE_SERVER)
	$(GO) mod download

$(BIN): $(GOFILES) go.mod go.sum
	@echo "building $(BIN): the first build compiles every dependency and takes a few minutes; later ones take seconds" >&2
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/ultramcp
	@ln -sf ultramcp bin/ultramcp-restate

build: $(RESTATE_SERVER) $(BIN)

# Start the local stack (idempotent), run a sample 3-participant, 2-round
# debate on the offline provider, print it, the URLs and the health.
demo:
	@$(MAKE) --no-print-directory -j2 build # npm's download beside the Go build
	$(BIN) up
	$(BIN) run chain-of-debate --topic "Should our team move its backend services from Python to Go?" \
		--participants architect,skeptic,pragmatist --rounds 2 --delay 1s --follow
	@$(BIN) dashboard
	@$(BIN) health
	@echo; echo "Stop the stack with: $(BIN) stop"

vet: lint
	$(GO) vet ./...
	@test -z "$$(gofmt -l $(GOFILES))" || { echo "gofmt needed:"; gofmt -l $(GOFILES); exit 1; }

# No function over 80 lines but the cobra command tables (…Command[s]) and
# tests: a reader follows a body from the top through named steps.
lint:
	@awk 'FNR==1{start=0} /^func /{name=$$0; start=FNR} /^}/{if(start && FNR-start+1>80 && name !~ /Commands?\(\)/){print FILENAME":"start": "FNR-start+1" lines: "name; bad=1} start=0} END{exit bad}' $$(git ls-files '*.go' | grep -v '_test\.go$$') || { echo "functions over 80 lines: split them into named steps" >&2; exit 1; }

# The whole suite: unit tests, and integration tests that start real
# restate-server processes on free ports. -race covers the packages with
# concurrency; the model providers (llm/…, which start no goroutine) and the
# commands run without it, so that the providers' SDKs, the largest of our
# dependencies, are not compiled a second time for the race detector. The
# end-to-end tests wait on their stacks more than they compute: four run at
# once, each on a stack of its own.
NO_RACE := $(GO) list ./... | grep -E '/llm($$|/)|/cli$$|/cmd/|/internal/bench$$'
test: build vet
	$(GO) test -race -count=1 -timeout 20m -parallel 4 $$($(GO) list ./... | grep -v -x -F "$$($(NO_RACE))")
	$(GO) test -count=1 -timeout 5m $$($(NO_RACE))

# Upgrades with workflows in flight: builds two more versions of the product
# (this code with a changed journal shape, and the release before versioned
# deployments) and upgrades stacks between them with up and with restart.
test-upgrade: build
	ULTRAMCP_TEST_UPGRADE=1 $(GO) test -count=1 -timeout 30m -run TestUpgradeKeepsWorkflowsInFlight -v ./e2e

# The pinned Jaeger v2 (tools/jaeger/go.mod), built once into the
# git-ignored .cache: the first build compiles the OpenTelemetry collector
# (about 5 minutes, 2 GB of memory); `up --with-jaeger` builds it too.
JAEGER_VERSION := $(shell awk '$$1 == "github.com/jaegertracing/jaeger" {print $$2; exit}' tools/jaeger/go.mod)
JAEGER := .cache/jaeger/jaeger-$(JAEGER_VERSION)
$(JAEGER): tools/jaeger/go.mod tools/jaeger/go.sum
	@echo "building Jaeger $(JAEGER_VERSION) from its Go module into $(JAEGER) (first time only: about 5 minutes)…" >&2
	@mkdir -p $(dir $(JAEGER))
	cd tools/jaeger && $(GO) build -o ../../$(JAEGER).tmp github.com/jaegertracing/jaeger/cmd/jaeger
	@mv $(JAEGER).tmp $(JAEGER)
jaeger: $(JAEGER)

# Traces end to end with a real Jaeger: one trace per run, every step a
# span, replays marked after a kill -9, no secret in any span.
test-tracing: build $(JAEGER)
	ULTRAMCP_TEST_TRACING=1 $(GO) test -count=1 -timeout 15m -run InJaeger ./e2e

# 300 debates at once against a provider allowing 8 calls at once, with
# the product's limits off: what a 429 storm costs (over a minute).
test-storm: build
	ULTRAMCP_TEST_STORM=1 $(GO) test -count=1 -timeout 10m -run 'TestLimitsOffStorm|TestLimitsHoldUnderLoad' -v ./e2e

# The dashboard's pictures in docs/screenshots, at 1280×800 and 390×844,
# taken by its browser tests in Debian's Chromium.
screenshots: build
	mkdir -p docs/screenshots
	ULTRAMCP_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -timeout 10m -run 'TestDashboard' ./e2e

test-short: build
	$(GO) test -short -count=1 ./...

bench: build
	$(BIN) bench

stop:
	-$(BIN) stop

clean: stop
	rm -rf bin .ultramcp
