# argovisor: `make run` builds everything and runs the demo; `make test`
# runs the unit and KVM integration tests. Both build what they need.

GO       ?= go
GOFLAGS  ?=
BIN      := bin/argovisor
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_SRC   := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum

.PHONY: all build guests run test unit integration race bench vet fmt clean

all: build guests

include firmware/build.mk

build: $(BIN)

$(BIN): $(GO_SRC)
	$(GO) build $(GOFLAGS) -ldflags "-X main.version=$(VERSION)" -o $@ ./cmd/argovisor

# The main demo: two domains print greetings with their domain ids.
run: build guests
	./$(BIN) run --timeout 60s examples/hello.toml

# Unit tests (no KVM) and KVM integration tests, with the race detector.
test: build guests vet
	$(GO) test $(GOFLAGS) -race -count=1 ./...

unit:
	$(GO) test $(GOFLAGS) -race -count=1 ./kvm/... ./vmm/... ./cmd/... ./argo/... ./gnttab/...

integration: build guests
	$(GO) test $(GOFLAGS) -race -count=1 -v ./test/...

bench: build guests
	$(GO) test $(GOFLAGS) -run '^$$' -bench . -benchmem -benchtime 2s ./test/...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w $$(find . -name '*.go' -not -path './build/*')

clean:
	rm -rf bin build
