package loadgen

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progressInterval is how often the progress line is written.
const progressInterval = time.Second

// startProgress writes a progress line to w every progressInterval until
// the returned function is called (which writes the final line). On a
// terminal the line is rewritten in place; elsewhere each is a new line.
// A nil w writes nothing.
func startProgress(w io.Writer, r *run, start time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	tty := isTerminal(w)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		var prevOps int64
		prev := start
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintln(w)
				}
				return
			case now := <-t.C:
				ops := r.ops.Load()
				rate := float64(ops-prevOps) / now.Sub(prev).Seconds()
				prevOps, prev = ops, now
				line := progressLine(now.Sub(start), r.o.Duration, ops, rate, r.errs.Load())
				if tty {
					fmt.Fprint(w, "\r\x1b[K"+line)
				} else {
					fmt.Fprintln(w, line)
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func progressLine(elapsed, total time.Duration, ops int64, rate float64, errs int64) string {
	return fmt.Sprintf("loadgen: %5.1fs/%v  %d ops acknowledged  %.0f ops/s  %d errors",
		elapsed.Seconds(), total, ops, rate, errs)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
