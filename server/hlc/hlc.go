package hlc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/record"
)

// DefaultMaxDrift is how far ahead of the local wall clock a remote
// timestamp may be, TopGun's default.
const DefaultMaxDrift = 60 * time.Second

// MaxNodeIDBytes bounds the length of a node id.
const MaxNodeIDBytes = 256

// EnvNodeID is the environment variable that sets the server's node id. The
// package never reads the environment itself: cmd passes the value (see
// NodeIDFromEnv).
const EnvNodeID = "TOPGUN_NODE_ID"

// Options configure a Clock. The zero value is valid and means the defaults.
type Options struct {
	// MaxDrift is how far ahead of the local wall clock a remote timestamp
	// may be before Update refuses it. 0 means DefaultMaxDrift.
	MaxDrift time.Duration

	// AllowDrift makes Update accept a timestamp beyond MaxDrift, with a
	// warning, and advance the clock to it: TopGun's non-strict mode. By
	// default such a timestamp is refused with a *DriftError and the clock is
	// left unchanged, so one client with a broken clock cannot drag the
	// server's clock into the future.
	AllowDrift bool

	// WallClock returns the current time. nil means time.Now. Tests inject a
	// fake clock here.
	WallClock func() time.Time

	// Logger receives the drift warnings of AllowDrift. nil means a null
	// logger.
	Logger hclog.Logger
}

// DefaultOptions returns the default options.
func DefaultOptions() *Options {
	return &Options{MaxDrift: DefaultMaxDrift}
}

// Validate reports a problem with the options.
func (o *Options) Validate() error {
	if o.MaxDrift < 0 {
		return fmt.Errorf("hlc: MaxDrift is %s; it must be positive (or 0 for the default %s)", o.MaxDrift, DefaultMaxDrift)
	}
	if o.MaxDrift != 0 && o.MaxDrift < time.Millisecond {
		return fmt.Errorf("hlc: MaxDrift is %s; it must be at least 1ms", o.MaxDrift)
	}
	return nil
}

// ErrClockDrift is matched (errors.Is) by the *DriftError Update returns.
var ErrClockDrift = errors.New("hlc: timestamp too far ahead of the local clock")

// DriftError is returned by Update (and CheckDrift) for a timestamp further
// ahead of the local wall clock than the allowed drift.
type DriftError struct {
	Remote   record.Timestamp
	Wall     uint64 // local wall clock, Unix ms
	MaxDrift time.Duration
}

func (e *DriftError) Error() string {
	return fmt.Sprintf("hlc: timestamp %s is %dms ahead of the local clock (at most %dms allowed); "+
		"the clock of node %q is wrong, or this server's clock is behind",
		e.Remote, e.Remote.Millis-e.Wall, e.MaxDrift.Milliseconds(), e.Remote.NodeID)
}

// Is makes errors.Is(err, ErrClockDrift) hold.
func (e *DriftError) Is(target error) bool { return target == ErrClockDrift }

// Clock is a hybrid logical clock, exactly as TopGun's (core-rust hlc.rs and
// core HLC.ts). It is safe for concurrent use.
type Clock struct {
	nodeID     string
	maxDrift   time.Duration
	maxDriftMs uint64
	allowDrift bool
	wall       func() time.Time
	log        hclog.Logger

	mu          sync.Mutex
	lastMillis  uint64
	lastCounter uint32
}

// New returns a clock that stamps with nodeID. An empty nodeID means
// DefaultNodeID(). nil opts means DefaultOptions().
func New(nodeID string, opts *Options) (*Clock, error) {
	if opts == nil {
		opts = DefaultOptions()
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if nodeID == "" {
		nodeID = DefaultNodeID()
	}
	if err := ValidateNodeID(nodeID); err != nil {
		return nil, err
	}
	c := &Clock{
		nodeID:     nodeID,
		maxDrift:   opts.MaxDrift,
		allowDrift: opts.AllowDrift,
		wall:       opts.WallClock,
		log:        opts.Logger,
	}
	if c.maxDrift == 0 {
		c.maxDrift = DefaultMaxDrift
	}
	c.maxDriftMs = uint64(c.maxDrift.Milliseconds())
	if c.wall == nil {
		c.wall = time.Now
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	return c, nil
}

// NodeID returns the node id the clock stamps with.
func (c *Clock) NodeID() string { return c.nodeID }

// MaxDrift returns the allowed drift.
func (c *Clock) MaxDrift() time.Duration { return c.maxDrift }

func (c *Clock) wallMillis() uint64 {
	ms := c.wall().UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

// Now returns a new timestamp for a local event, greater than every timestamp
// the clock issued or received before: if the wall clock moved past the last
// timestamp, (wall, 0); otherwise the last millis with the counter plus one.
// A counter overflow moves to the next millisecond with counter 0, as
// TopGun's Rust clock does. (At millis = MaxUint64, unreachable from a real
// wall clock, the clock stops advancing.)
func (c *Clock) Now() record.Timestamp {
	wall := c.wallMillis()
	c.mu.Lock()
	if wall > c.lastMillis {
		c.lastMillis = wall
		c.lastCounter = 0
	} else {
		c.lastMillis, c.lastCounter = next(c.lastMillis, c.lastCounter)
	}
	ts := record.Timestamp{Millis: c.lastMillis, Counter: c.lastCounter, NodeID: c.nodeID}
	c.mu.Unlock()
	return ts
}

// next returns (millis, counter+1), carrying into millis on overflow.
func next(millis uint64, counter uint32) (uint64, uint32) {
	if counter < math.MaxUint32 {
		return millis, counter + 1
	}
	if millis == math.MaxUint64 {
		return millis, counter // saturated
	}
	return millis + 1, 0
}

// CheckDrift returns a *DriftError when remote is further ahead of the local
// wall clock than the allowed drift, and nil otherwise. It does not change
// the clock.
func (c *Clock) CheckDrift(remote record.Timestamp) error {
	wall := c.wallMillis()
	if remote.Millis > wall && remote.Millis-wall > c.maxDriftMs {
		return &DriftError{Remote: remote, Wall: wall, MaxDrift: c.maxDrift}
	}
	return nil
}

// Update merges a timestamp received from elsewhere, so that every later
// Now is greater than it. Let m = max(last, wall, remote.millis):
//
//   - m equals both last and remote: counter = max(last, remote counter) + 1
//   - m equals last only: counter = last counter + 1
//   - m equals remote only: counter = remote counter + 1
//   - otherwise (the wall clock is ahead): counter = 0
//
// with the same overflow rule as Now. A remote timestamp more than MaxDrift
// ahead of the wall clock is refused with a *DriftError and the clock is left
// unchanged, unless AllowDrift is set (then a warning is logged).
func (c *Clock) Update(remote record.Timestamp) error {
	wall := c.wallMillis()
	if remote.Millis > wall && remote.Millis-wall > c.maxDriftMs {
		if !c.allowDrift {
			return &DriftError{Remote: remote, Wall: wall, MaxDrift: c.maxDrift}
		}
		c.log.Warn("clock drift", "drift_ms", remote.Millis-wall, "remote_millis", remote.Millis,
			"local_millis", wall, "max_drift_ms", c.maxDriftMs, "remote_node", remote.NodeID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.lastMillis
	m := max(last, wall, remote.Millis)
	switch {
	case m == last && m == remote.Millis:
		c.lastMillis, c.lastCounter = next(m, max(c.lastCounter, remote.Counter))
	case m == last:
		c.lastMillis, c.lastCounter = next(m, c.lastCounter)
	case m == remote.Millis:
		c.lastMillis, c.lastCounter = next(m, remote.Counter)
	default:
		c.lastMillis, c.lastCounter = m, 0
	}
	return nil
}

// ValidateNodeID reports whether id can be a node id: non-empty, valid
// UTF-8, at most MaxNodeIDBytes, and without ':' (the separator of the
// "millis:counter:nodeId" form that tags are made of).
func ValidateNodeID(id string) error {
	switch {
	case id == "":
		return errors.New("hlc: the node id is empty")
	case strings.ContainsRune(id, ':'):
		return fmt.Errorf("hlc: node id %q contains ':', which separates the parts of a timestamp; choose an id without it", id)
	case !utf8.ValidString(id):
		return fmt.Errorf("hlc: node id %q is not valid UTF-8", id)
	case len(id) > MaxNodeIDBytes:
		return fmt.Errorf("hlc: node id is %d bytes long; at most %d are allowed", len(id), MaxNodeIDBytes)
	}
	return nil
}

// DefaultNodeID returns a node id for a server that was given none: the host
// name (characters other than letters, digits, '.', '_' and '-' replaced by
// '-', at most 48 bytes) followed by '-' and 8 random hex digits, e.g.
// "db-host-1-3f9a0c12". The random part makes two processes on one host
// distinct, so their timestamps and OR-Map tags never collide; it changes at
// every start, which is harmless because a node id only breaks ties between
// timestamps. Set TOPGUN_NODE_ID for a stable id.
func DefaultNodeID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if b.Len() >= 48 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		b.WriteString("topgun")
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go 1.24+)
	b.WriteByte('-')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// NodeIDFromEnv returns the node id configured in TOPGUN_NODE_ID, looked up
// with lookup (os.LookupEnv in cmd), or DefaultNodeID() when it is unset or
// empty. A set but invalid value is an error naming the variable.
func NodeIDFromEnv(lookup func(string) (string, bool)) (string, error) {
	v, ok := lookup(EnvNodeID)
	if !ok || v == "" {
		return DefaultNodeID(), nil
	}
	if err := ValidateNodeID(v); err != nil {
		return "", fmt.Errorf("%s: %w", EnvNodeID, err)
	}
	return v, nil
}
