package forward

import (
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestLoggerRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out strings.Builder
		var l logger
		l.init(&out, func() string { return "p: " })

		for i := range 100 {
			l.log(evDial, "refused "+strconv.Itoa(i))
		}
		l.log(evAccept, "other kind")
		time.Sleep(logInterval)
		synctest.Wait()

		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		want := []string{
			"p: refused 0",
			"p: other kind",
			"p: refused 99 (99 similar in the last 1s)",
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Errorf("log =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}

		// After a quiet interval, the next line goes out at once.
		time.Sleep(logInterval)
		out.Reset()
		l.log(evDial, "again")
		if got := out.String(); got != "p: again\n" {
			t.Errorf("after a quiet interval, log = %q; want the line at once", got)
		}
		l.close()
	})
}
