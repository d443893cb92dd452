module github.com/userland-proxy/portmapper

go 1.26.0

require (
	github.com/docker/docker v28.5.2+incompatible
	github.com/ishidawataru/sctp v0.0.0-20251114114122-19ddcbc6aae2
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.63.0
	golang.org/x/sys v0.50.0
	gotest.tools/v3 v3.5.2
)

require (
	github.com/containerd/errdefs v1.0.0 // indirect
	github.com/google/go-cmp v0.5.9 // indirect
)
