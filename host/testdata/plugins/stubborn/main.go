// Command stubborn is a test plugin that declares abi.CapMultiInstance and
// takes its time: its close spins for 10 seconds (or for its config's
// close_spin, then returning close_error if set), applying a batch to map
// "loop" spins forever and to map "slow" spins for 3 seconds. Sandboxed,
// each is stopped at the call timeout; the tests check that Backend.Close
// is bounded all the same.
package main

import (
	"context"
	"errors"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

type stubborn struct {
	*null.Backend
	closeSpin  time.Duration
	closeError string
}

func (s stubborn) Describe() abi.Description {
	d := s.Backend.Describe()
	d.Name = "stubborn"
	d.Capabilities |= abi.CapMultiInstance
	return d
}

var spins int

func spin() {
	for {
		spins++
	}
}

func (s stubborn) Apply(ctx context.Context, b *abi.Batch) error {
	if len(b.Mutations) > 0 && b.Mutations[0].Map == "loop" {
		spin()
	}
	if len(b.Mutations) > 0 && b.Mutations[0].Map == "slow" {
		spinFor(3 * time.Second)
	}
	return s.Backend.Apply(ctx, b)
}

// spinFor spins for d (not forever: trusted, a guest that never returns
// would stop the test process at its next garbage collection).
func spinFor(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		spins++
	}
}

func (s stubborn) Close() error {
	spinFor(s.closeSpin)
	if s.closeError != "" {
		return errors.New(s.closeError)
	}
	return nil
}

func init() {
	sdk.ServeOpen("stubborn", abi.CapAtomicBatch|abi.CapMultiInstance, func(cfg map[string]string) (abi.Backend, error) {
		s := stubborn{Backend: null.Open(), closeSpin: 10 * time.Second, closeError: cfg["close_error"]}
		if v, ok := cfg["close_spin"]; ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, err
			}
			s.closeSpin = d
		}
		return s, nil
	})
}

func main() {}
