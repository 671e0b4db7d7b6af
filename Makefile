# argovisor: `make run` builds everything and runs the demo; `make test`
# runs the unit and KVM integration tests. Both build what they need.

GO       ?= go
GOFLAGS  ?=
BIN      := bin/argovisor
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_SRC   := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum

.PHONY: all build build-race guests run test test-tools unit integration stress race bench bench-go vet fmt clean checklocks lockdep vm-fetch check-static

all: build guests

include firmware/build.mk

build: $(BIN)

# The race-detector build needs cgo, so it cannot run under the killing
# seccomp filter (the C library makes calls of its own): it refuses
# --seccomp=on, and the tests run it with --seccomp=log (TestRaceBuildUnderLogFilter).
build-race: bin/argovisor-race

bin/argovisor-race: $(GO_SRC)
	$(GO) build $(GOFLAGS) -race -ldflags "-X main.version=$(VERSION)-race" -o $@ ./cmd/argovisor

# The CLI is static and has no cgo: under the seccomp filter no C library
# may make system calls of its own (docs/security.md, "A static binary").
# Every test, the bench and the VM path run this same binary.
$(BIN): $(GO_SRC)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -ldflags "-X main.version=$(VERSION)" -o $@ ./cmd/argovisor

# The main demo: two domains exchange sequenced, checksummed messages over
# Argo and print a summary (examples/hello.toml is the smallest example).
run: build guests
	./$(BIN) run --timeout 120s examples/pingpong.toml

# Unit tests (no KVM) and KVM integration tests, with the race detector,
# after the static checks and the lock-order (lockdep) build of Argo and
# the grant tables. The KVM tests run natively where /dev/kvm works, and
# inside a QEMU/TCG VM elsewhere or with ARGOVISOR_TEST_VM=1 (test/run.sh,
# docs/testing.md); every one of them must run.
test: build build-race guests vet checklocks lockdep test-tools
	GO=$(GO) ./test/run.sh

# Host tools the KVM tests drive: socat (TestHostStreamSocat talks to a
# guest through a stream socket as a Firecracker vsock user would). Taken
# from the machine if it has it, else fetched once from Debian's registry
# into build/tools with the one library it needs beyond the base system.
SOCAT_LOCAL := build/tools/usr/bin/socat
test-tools: $(if $(shell command -v socat 2>/dev/null),,$(SOCAT_LOCAL))

$(SOCAT_LOCAL):
	rm -rf build/tools && mkdir -p build/tools/debs
	cd build/tools/debs && apt-get download socat libwrap0
	for d in build/tools/debs/*.deb; do dpkg-deb -x $$d build/tools; done
	test -x $@

# The VM runner for the KVM tests on hosts without KVM (tools/vmtest); it
# fetches QEMU, a kernel and busybox from Debian's registry into build/vm.
bin/vmtest: tools/go.mod tools/go.sum $(wildcard tools/vmtest/*)
	cd tools && $(GO) build -o ../bin/vmtest ./vmtest

# gVisor's checklocks analyzer over the Argo, grant-table and VMM (grant window)
# lock annotations. -inferred=false:
# only declared guards are checked (not guesses about immutable fields).
bin/checklocks: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../bin/checklocks gvisor.dev/gvisor/tools/checklocks/cmd/checklocks

checklocks: bin/checklocks
	$(GO) vet -vettool=bin/checklocks -inferred=false ./argo/... ./gnttab/... ./memop/... ./vmm/... ./hostsock/...

# The Argo, grant-table and memory-reservation tests with gVisor's lock validator (order
# inversions, unnamed nesting) and the lock-state assertions compiled in.
lockdep:
	$(GO) test $(GOFLAGS) -race -count=1 -tags 'lockdep lockdebug' ./internal/hsync/... ./argo/... ./gnttab/... ./memop/...

unit:
	$(GO) test $(GOFLAGS) -race -count=1 ./kvm/... ./vmm/... ./cmd/... ./argo/... ./gnttab/... ./memop/...

integration: build build-race guests
	ARGOVISOR_CLI=$(abspath $(BIN)) ARGOVISOR_CLI_RACE=$(abspath bin/argovisor-race) $(GO) test $(GOFLAGS) -race -count=1 -v ./test/...

# Every KVM integration test STRESS_COUNT (30) times in a row under -race,
# with a go test -race ./... loop beside it as load (test/stress.sh).
# Long: about 30 × the integration package's time. STRESS_RUN=REGEX narrows it.
stress: build guests
	GO=$(GO) ./test/stress.sh

# argovisor bench: every figure against floors measured in the same run;
# writes bench/results/latest.json and bench/results/throughput.svg.
# On the VM path (no usable /dev/kvm, or ARGOVISOR_TEST_VM=1) every time is
# TCG's: the report says so (platform "qemu-tcg") and goes to vm-tcg.json,
# beside the native latest.json rather than over it.
bench: build guests
	@if [ "$$(test/kvm-path.sh)" = native ]; then ./$(BIN) bench; \
	else $(MAKE) -s bin/vmtest && bin/vmtest -- ./$(BIN) bench \
		--out bench/results/vm-tcg.json --svg bench/results/vm-tcg.svg; fi

# The go test benchmarks (finer-grained, for profiling with -cpuprofile).
bench-go: build guests
	$(GO) test $(GOFLAGS) -run '^$$' -bench . -benchmem -benchtime 3x ./vmm/ ./bench/

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w $$(find . -name '*.go' -not -path './build/*')

clean:
	rm -rf bin build

# Fetch what the VM path needs (QEMU, a kernel, busybox) without running it.
vm-fetch: bin/vmtest
	bin/vmtest fetch

# The shipped binary is static: no program interpreter, built without cgo.
check-static: build
	@! readelf -lW $(BIN) | grep -q 'Requesting program interpreter' || { echo "$(BIN) is dynamically linked"; exit 1; }
	@$(GO) version -m $(BIN) | grep -q 'CGO_ENABLED=0' || { echo "$(BIN) was built with cgo"; exit 1; }
	@echo "$(BIN): static, no cgo"
