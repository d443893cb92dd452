//go:build linux

package forward

import "testing"

func TestPipePoolBounded(t *testing.T) {
	var pool pipePool
	defer pool.close()

	var pipes []*pipe
	for range 2 * maxIdlePipes {
		p, err := pool.get()
		if err != nil {
			t.Fatal(err)
		}
		pipes = append(pipes, p)
	}
	for _, p := range pipes {
		pool.put(p)
	}
	if got := len(pool.idle); got != maxIdlePipes {
		t.Errorf("pool keeps %d pipes; want %d", got, maxIdlePipes)
	}

	// A pipe with bytes in it must never be reused.
	p, _ := pool.get()
	p.n = 1
	pool.put(p)
	if got := len(pool.idle); got != maxIdlePipes-1 {
		t.Errorf("pool took back a pipe with data: %d idle", got)
	}
}
