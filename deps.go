package portmapper

import (
	_ "github.com/docker/docker/libnetwork/types"
	_ "github.com/ishidawataru/sctp"
	_ "go.uber.org/goleak"
	_ "golang.org/x/net/ipv4"
	_ "golang.org/x/sys/unix"
	_ "gotest.tools/v3/assert"
)
