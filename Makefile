# rivet-gateway: the two commands of the README are `make demo` and `make test`.
UPSTREAM := integration/upstream
GO_FILES = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './$(UPSTREAM)/node_modules/*')
FUZZTIME ?= 10s

.PHONY: all build release deps test lint unit fuzz demo bench clean

all: build

# What `rivet-gateway -version` prints. Outside a git checkout it is empty
# and the binary reports its Go build information instead.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

build:
	go build -ldflags "-X main.version=$(VERSION)" -o bin/rivet-gateway ./cmd/rivet-gateway

# Versioned static binaries for linux and darwin, amd64 and arm64, each with
# a CycloneDX SBOM, and SHA256SUMS, in dist/$(VERSION)/ (scripts/release.sh;
# TARGETS="linux/amd64" for fewer).
release:
	VERSION="$(VERSION)" ./scripts/release.sh

# The real RivetKit upstream (engine binary + actor runtime) comes from npm.
# `npm install` with the committed lock, not `npm ci`: this registry serves
# only the linux-x64 platform packages (see integration/README.md).
deps: $(UPSTREAM)/node_modules/.package-lock.json
$(UPSTREAM)/node_modules/.package-lock.json: $(UPSTREAM)/package.json $(UPSTREAM)/package-lock.json
	cd $(UPSTREAM) && npm install --no-audit --no-fund --loglevel=error
	@touch $@

# gofmt, go vet, and no binary tracked by git (scripts/check-binaries.sh).
lint:
	./scripts/check-binaries.sh
	@unformatted="$$(gofmt -l $(GO_FILES))"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	cd deploy && go vet ./...
	@if go mod graph | grep -q ' k8s\.io/'; then echo "k8s.io modules are in the root module's graph: they belong in deploy/go.mod"; exit 1; fi

# Every test, the end-to-end ones against the real engine and JS client
# included. deploy/ is a module of its own (deploy/go.mod: it keeps the
# k8s.io modules out of importers' module graphs), so ./... skips it.
test: deps lint
	go test -race -count=1 -timeout 40m ./...
	cd deploy && go test -race -count=1 -timeout 10m ./...
	# Allocation ceilings (gateway/ and proxy/allocs_test.go): meaningful only without
	# the race detector, which makes sync.Pool drop items at random.
	go test -count=1 -run Allocs ./gateway/ ./proxy/

# Each fuzz target for a bounded time.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

demo: deps build
	./scripts/demo.sh

clean:
	rm -rf bin dist

# Load harness (bench/README.md): rivet-gateway vs a direct connection,
# A/B/A/B, table in bench/results/latest.md. Quick < 2½ min, full < 10 min.
.PHONY: bench-full soak
bench:
	go run ./bench -mode quick

bench-full:
	go run ./bench -mode full

# 10,000 WebSockets through the gateway for 2 minutes with message traffic
# (CI runs a 500-connection version: go test ./bench -run TestSoakCI).
soak:
	go run ./bench -soak -conns 10000 -duration 2m
