GO ?= go
BIN := bin

.PHONY: all build test vet demo bench clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

# Publishes a small loopback backend with portmap, sends HTTP, TCP and UDP
# traffic through it, reports, and stops everything.
demo: build
	./$(BIN)/portmap-demo -portmap $(BIN)/portmap

# Measures the launcher and proxy side by side with their peers; writes
# bench/out/results.md and bench/out/results.json.
bench: build
	$(GO) run ./bench -bin $(BIN) -out bench/out

clean:
	rm -rf $(BIN)
