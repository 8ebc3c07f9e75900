# adedge — see README.md. Every target works on a fresh machine with Go.
GO        ?= go
BIN       := bin
PKGS      := ./...
DEMO_DIR  ?= /tmp/adedge-demo
FUZZTIME  ?= 30s
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)

.PHONY: all build readme test test-race bench bench-quick bench-micro demo fuzz lint clean faults

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/adedge ./server/cmd/adedge
	$(GO) build -o $(BIN)/adbuilder ./builder/cmd/adbuilder
	$(GO) build -o $(BIN)/adtool ./tools/cmd/adtool

# Rewrite README.md's usage blocks from the binaries' own -h text (the
# TestReadmeUsage tests fail when they differ).
readme:
	$(GO) test -count=1 -p 1 -run '^(TestReadmeUsage|TestHelpExitsZero)$$' ./server/cmd/adedge/ ./builder/cmd/adbuilder/ ./tools/cmd/adtool/ -update

# The CI gate: vet, then every test (fuzz targets run their committed corpus),
# with the race detector on the concurrent packages. The fault drills and
# the HAProxy end-to-end test run alone afterwards, one package at a time:
# they time real processes and must not share the two cores with the other
# packages' tests.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 12m $$($(GO) list $(PKGS) | grep -v -e /tools/faults$$ -e /health/e2e$$)
	$(GO) test -count=1 -p 1 -timeout 6m ./tools/faults/ ./health/e2e/
	$(GO) test -count=1 -race -timeout 8m ./server/... ./snapshot/... ./health/

# Fault drills against real edge processes (tools/faults): the long form.
# The short form runs in `make test`.
faults:
	ADEDGE_FAULTS=full $(GO) test -count=1 -v -timeout 15m ./tools/faults/

# The benchmark suite (tools/benchsuite): micro-benchmarks, adedge vs a
# trivial fasthttp handler vs nginx, find-max, latency at fixed rates,
# swaps, builder time and RSS, distribution. Rewrites the generated part of
# docs/BENCHMARKS.md and docs/BENCHMARKS.json (~15 min). bench-quick is the
# same suite in short form (< 2 min) into /tmp, so it never replaces the
# committed figures. BENCHFLAGS=--fifo runs the servers and load
# generators at SCHED_FIFO 1 (root or CAP_SYS_NICE): on a shared machine
# other sessions' jobs otherwise show in the latency figures.
bench: build
	$(BIN)/adtool bench $(BENCHFLAGS) --bin $(BIN) --src . --out docs/BENCHMARKS.md --json docs/BENCHMARKS.json

bench-quick: build
	@test -f /tmp/adedge-bench-quick.md || cp docs/BENCHMARKS.md /tmp/adedge-bench-quick.md
	$(BIN)/adtool bench $(BENCHFLAGS) --quick --bin $(BIN) --src . --out /tmp/adedge-bench-quick.md --json /tmp/adedge-bench-quick.json

# Every micro-benchmark beside the code, raw.
bench-micro:
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
	@! git grep -nE '^(<<<<<<< |>>>>>>> |=======$$)' -- ':!*.snap' ':!*.hex' || (echo 'merge conflict markers left in the tree'; exit 1)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1)
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

clean:
	rm -rf $(BIN)
