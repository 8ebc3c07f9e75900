# adedge — see README.md. Every target works on a fresh machine with Go.
GO        ?= go
BIN       := bin
PKGS      := ./...
DEMO_DIR  ?= /tmp/adedge-demo
FUZZTIME  ?= 30s
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)

.PHONY: all build test test-race bench demo fuzz lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/adedge ./server/cmd/adedge
	$(GO) build -o $(BIN)/adbuilder ./builder/cmd/adbuilder
	$(GO) build -o $(BIN)/adtool ./tools/cmd/adtool

# The CI gate: vet, then every test (fuzz targets run their committed corpus),
# with the race detector on the concurrent packages.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 12m $(PKGS)
	$(GO) test -count=1 -race -timeout 8m ./server/... ./snapshot/... ./health/

# Micro-benchmarks beside the code; docs/BENCHMARKS.md explains each figure.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./snapshot/ ./builder/... ./server/... | tee /tmp/adedge-bench.txt

# Sample inventory -> snapshot -> inspect, on the embedded small scale.
demo: build
	bash tools/demo.sh $(DEMO_DIR)

# Each fuzz target for FUZZTIME; new interesting inputs land in the
# package's testdata/fuzz and are committed as corpus.
fuzz:
	@for t in $$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)' --include='*_test.go' . | sed 's/func //'); do \
	  pkg=$$(grep -rlE "^func $$t\(" --include='*_test.go' . | head -1 | xargs dirname); \
	  echo "== $$pkg $$t"; \
	  $(GO) test $$pkg -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s || exit 1; \
	  d=$$($(GO) env GOCACHE)/fuzz/github.com/adedge/adedge/$${pkg#./}/$$t; \
	  if [ -d $$d ]; then mkdir -p $$pkg/testdata/fuzz/$$t && cp -n $$d/* $$pkg/testdata/fuzz/$$t/; fi; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1)
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

clean:
	rm -rf $(BIN)
