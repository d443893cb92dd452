package portmapper

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// logQueueLen is how many records may wait for a slow logger before new
// ones are dropped.
const logQueueLen = 64

// logQueue hands records to the caller's logger from a goroutine of its
// own, so that a slow logger never holds up reading the proxy's output,
// reaping it or stopping it. Records that find the queue full are
// dropped and counted; the count is logged once the logger catches up.
type logQueue struct {
	log     *slog.Logger
	records chan logRecord
	dropped atomic.Int64
}

type logRecord struct {
	level slog.Level
	msg   string
	args  []any
}

func newLogQueue(log *slog.Logger) *logQueue {
	return &logQueue{log: log, records: make(chan logRecord, logQueueLen)}
}

// add queues a record without ever blocking.
func (q *logQueue) add(level slog.Level, msg string, args ...any) {
	select {
	case q.records <- logRecord{level, msg, args}:
	default:
		q.dropped.Add(1)
	}
}

// run logs queued records until done is closed, then logs what is left.
// Records added after done closes are not logged.
func (q *logQueue) run(done <-chan struct{}) {
	for {
		select {
		case r := <-q.records:
			q.emit(r)
		case <-done:
			q.flush()
			return
		}
	}
}

func (q *logQueue) flush() {
	for {
		select {
		case r := <-q.records:
			q.emit(r)
		default:
			q.reportDropped()
			return
		}
	}
}

func (q *logQueue) emit(r logRecord) {
	q.reportDropped()
	q.log.Log(context.Background(), r.level, r.msg, r.args...)
}

func (q *logQueue) reportDropped() {
	if n := q.dropped.Swap(0); n > 0 {
		q.log.Warn("userland proxy log records dropped: the logger is too slow", "dropped", n)
	}
}
