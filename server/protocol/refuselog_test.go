package protocol

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// lineCounter counts the log lines holding a string, and sends every line
// to t.Log.
type lineCounter struct {
	t    testing.TB
	want string
	mu   sync.Mutex
	n    int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	if strings.Contains(string(p), c.want) {
		c.n++
	}
	c.mu.Unlock()
	c.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// A client hammering a server at TOPGUN_MAX_CONNECTIONS is refused each
// time (and counted in ClientsRefused), but does not get a warning logged
// per attempt: anyone who can reach the port could flood the log. The
// server warns once when it starts refusing.
func TestServer_refusalsAtTheLimitDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	lc := &lineCounter{t: t, want: "[WARN]"}
	log := hclog.New(&hclog.LoggerOptions{Output: lc, Level: hclog.Info})
	e := newEnv(t, envConfig{opts: Options{MaxConnections: 1, Logger: log}})
	a := e.dial(t)
	a.ping()
	const attempts = 50
	for i := 0; i < attempts; i++ {
		if code, out := e.postRaw(t, nil, ""); code != http.StatusServiceUnavailable {
			t.Fatalf("POST /sync %d with every slot taken: %d %s", i, code, out)
		}
	}
	if n := e.srv.Stats().ClientsRefused; n != attempts {
		t.Fatalf("ClientsRefused = %d, want %d", n, attempts)
	}
	if n := lc.count(); n != 1 {
		t.Errorf("%d warnings logged for %d refused attempts, want 1", n, attempts)
	}
}
