package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/plugins"
)

// TestStorePing_breakerOpen checks what /ready sees: plugins.Store.Ping
// fails with unavailable while the plugin's circuit breaker is open, and
// succeeds again (being itself the retry) once the backoff has passed.
func TestStorePing_breakerOpen(t *testing.T) {
	t.Parallel()
	ho := host.DefaultOptions()
	ho.BreakerFailures = 2
	// The Ping below must come within the backoff, or it is itself the
	// retry: long enough for a loaded machine (the test waits it out).
	ho.BreakerBackoff = 2 * time.Second
	ho.BreakerMaxBackoff = 2 * time.Second
	log := hclog.New(&hclog.LoggerOptions{Output: hosttest.Writer{T: t}, Level: hclog.Debug, DisableTime: true})
	ctx := context.Background()
	s, err := plugins.Open(ctx, "testdata/wat/trap.wasm", &plugins.Options{Plugin: ho, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping on a healthy plugin = %v", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Backend().Get(ctx, "evil", false, []string{"k"}); !errors.Is(err, abi.ErrInternal) {
			t.Fatalf("Get(evil) = %v, want the trap", err)
		}
	}
	err = s.Ping(ctx)
	if !errors.Is(err, abi.ErrUnavailable) || !strings.Contains(err.Error(), "circuit breaker is open") {
		t.Fatalf("Ping with the breaker open = %v, want unavailable naming the breaker", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ping still fails 10s after a 2s backoff: %v", s.Ping(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.Backend().(*host.Backend).Stats().Breaker; st.State != "closed" || st.Closed != 1 {
		t.Errorf("breaker %+v after Ping retried successfully, want closed", st)
	}
}
