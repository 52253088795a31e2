package abitest

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// Model test sizes.
const (
	modelSteps      = 2000
	modelShortSteps = 300
	modelHistory    = 30 // operations shown with a failure
	modelMaxReopens = 10
)

// The model's key space: a few maps (weird names included) and keys whose
// byte order differs from most collations, so records collide often.
var (
	modelMaps = []string{"m", "todo-items", "ключ/😀", "'; DROP TABLE x; --"}
	modelKeys = []string{"", "a", "a ", "A", "aa", "a/b", "b", "é", "e\u0301", "ключ", "😀", "%", "_", "10", "9", "z"}
)

// modelSeedEnv names the variable that replays a model run.
const modelSeedEnv = "TOPGUN_MODEL_SEED"

func testModel(t TB, h Harness) {
	seed := time.Now().UnixNano()
	if s := os.Getenv(modelSeedEnv); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("abitest: %s=%q is not an integer; set it to the seed a failed run printed, or unset it", modelSeedEnv, s)
		}
		seed = v
	}
	steps := modelSteps
	if h.Short {
		steps = modelShortSteps
	}
	RunModel(t, h, seed, steps)
}

// RunModel applies steps random operations, drawn from seed, to a fresh
// backend from h and to the reference backend (plugins/null), and compares
// every result: put and delete batches of 1 to 20 mutations (with backup
// flags, random expirations and increasing times, some of them invalid),
// gets, scans with random limits and budgets (compared as the whole
// sequence of records), ListMaps, and ListExpired at random times (compared
// as sets ordered by null.ExpiredLess, and with small limits by expiration
// times). Durable backends with h.Reopen are also reopened now and then.
// The seed is logged at the start and named in every failure.
func RunModel(t TB, h Harness, seed int64, steps int) {
	t.Helper()
	t.Logf("model: seed %d, %d steps (replay with %s=%d)", seed, steps, modelSeedEnv, seed)
	m := &model{t: t, h: h, seed: seed, rng: rand.New(rand.NewSource(seed)), ctx: ctxOf(t), now: t0}
	m.be = open(t, h)
	m.ref = null.Open()
	defer m.ref.Close()
	durable := h.Reopen != nil && m.be.Describe().Capabilities.Has(abi.CapDurable)
	reopens := 0
	for m.step = 1; m.step <= steps; m.step++ {
		switch x := m.rng.Intn(100); {
		case x < 40:
			m.apply(m.randomBatch())
		case x < 43:
			m.apply(m.invalidBatch())
		case x < 58:
			m.get()
		case x < 73:
			m.scan()
		case x < 80:
			m.listMaps()
		case x < 99:
			m.listExpired()
		default:
			if durable && reopens < modelMaxReopens {
				reopens++
				m.reopen()
			} else {
				m.listMaps()
			}
		}
	}
	m.note("final comparison of every map")
	m.compareAll()
}

type model struct {
	t       TB
	h       Harness
	seed    int64
	rng     *rand.Rand
	ctx     context.Context
	be      abi.Backend
	ref     *null.Backend
	now     int64
	step    int
	history []string
}

func (m *model) note(format string, args ...any) {
	if len(m.history) == modelHistory {
		copy(m.history, m.history[1:])
		m.history = m.history[:modelHistory-1]
	}
	m.history = append(m.history, fmt.Sprintf("step %d: ", m.step)+fmt.Sprintf(format, args...))
}

func (m *model) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("model (seed %d, step %d): %s\nlast operations, oldest first:\n  %s\nreplay with %s=%d",
		m.seed, m.step, fmt.Sprintf(format, args...), strings.Join(m.history, "\n  "), modelSeedEnv, m.seed)
}

func (m *model) pick(ss []string) string { return ss[m.rng.Intn(len(ss))] }

func (m *model) randomValue() []byte {
	switch m.rng.Intn(20) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	v := make([]byte, 1+m.rng.Intn(40))
	for i := range v {
		v[i] = byte(m.rng.Intn(256))
	}
	return v
}

func (m *model) randomBatch() *abi.Batch {
	m.now += 1 + m.rng.Int63n(20)
	b := &abi.Batch{Now: m.now}
	for n := 1 + m.rng.Intn(20); n > 0; n-- {
		mp, key, backup := m.pick(modelMaps), m.pick(modelKeys), m.rng.Intn(4) == 0
		if m.rng.Intn(10) < 7 {
			exp := int64(0)
			if m.rng.Intn(2) == 0 {
				exp = max(1, m.now+m.rng.Int63n(400)-100)
			}
			b.Put(mp, key, backup, m.randomValue(), exp)
		} else {
			b.Delete(mp, key, backup)
		}
	}
	return b
}

func (m *model) invalidBatch() *abi.Batch {
	b := m.randomBatch()
	bad := []abi.Mutation{
		{Kind: abi.OpPut, Map: "", Key: "k"},
		{Kind: abi.OpPut, Map: "m", Key: "nul\x00"},
		{Kind: abi.OpDelete, Map: "m", Key: strings.Repeat("k", abi.MaxKeyBytes+1)},
		{Kind: abi.OpPut, Map: "m\xff", Key: "k"},
		{Kind: 9, Map: "m", Key: "k"},
		{Kind: abi.OpPut, Map: "m", Key: "k", ExpirationTime: -5},
	}
	if i := m.rng.Intn(len(bad) + 1); i < len(bad) {
		b.Mutations = append(b.Mutations, bad[i])
	} else {
		b.Now = 0
	}
	return b
}

func describeBatch(b *abi.Batch) string {
	parts := make([]string, len(b.Mutations))
	for i, mu := range b.Mutations {
		parts[i] = fmtMutation(mu)
	}
	return fmt.Sprintf("Apply(now=%d, %s)", b.Now, strings.Join(parts, ", "))
}

func (m *model) apply(b *abi.Batch) {
	m.note("%s", describeBatch(b))
	// The reference goes first, so that a backend that changed the batch
	// could not change what the reference applies.
	errRef := m.ref.Apply(m.ctx, b)
	err := m.be.Apply(m.ctx, b)
	if abi.CodeOf(err) != abi.CodeOf(errRef) {
		m.fatalf("Apply = %v; the reference backend returned %v", err, errRef)
	}
}

func (m *model) get() {
	mp, backup := m.pick(modelMaps), m.rng.Intn(4) == 0
	keys := make([]string, m.rng.Intn(7))
	for i := range keys {
		if m.rng.Intn(8) == 0 {
			keys[i] = "never-written"
		} else {
			keys[i] = m.pick(modelKeys)
		}
	}
	m.note("Get(%s, backup=%v, %s)", q(mp), backup, qs(keys))
	got, err := m.be.Get(m.ctx, mp, backup, keys)
	if err != nil {
		m.fatalf("Get = %v; want nil", err)
	}
	want, err := m.ref.Get(m.ctx, mp, backup, keys)
	if err != nil {
		m.fatalf("reference Get = %v", err)
	}
	if d := diffRecords(got, want); d != "" {
		m.fatalf("Get(%s, backup=%v, %s): %s", q(mp), backup, qs(keys), d)
	}
}

// refScan is the reference's whole scan of one map side.
func (m *model) refScan(mp string, backup bool) []abi.Record {
	p, err := m.ref.Scan(m.ctx, abi.ScanRequest{Map: mp, Backup: backup, Limit: math.MaxInt32, MaxBytes: math.MaxInt32})
	if err != nil || len(p.Cursor) != 0 {
		m.fatalf("reference Scan = cursor %q, %v", p.Cursor, err)
	}
	return p.Records
}

func (m *model) compareScan(mp string, backup bool, limit, budget int) {
	m.t.Helper()
	want := m.refScan(mp, backup)
	got, err := scanChecked(m.ctx, m.be, mp, backup, scanOpts{limit: limit, budget: budget, maxPages: len(want) + 2, exactEnd: true})
	if err != nil {
		m.fatalf("%v", err)
	}
	if d := diffRecords(got, want); d != "" {
		m.fatalf("Scan(%s, backup=%v, limit=%d, budget=%d), all pages: %s", q(mp), backup, limit, budget, d)
	}
}

func (m *model) scan() {
	mp, backup := m.pick(modelMaps), m.rng.Intn(4) == 0
	if m.rng.Intn(20) == 0 {
		mp = "never-written"
	}
	limit := []int{0, 1, 2, 3, 7, 50}[m.rng.Intn(6)]
	budget := []int{0, 1, 10, 50, 200}[m.rng.Intn(5)]
	m.note("Scan(%s, backup=%v, limit=%d, budget=%d)", q(mp), backup, limit, budget)
	m.compareScan(mp, backup, limit, budget)
}

func (m *model) listMaps() {
	m.note("ListMaps()")
	got, err := m.be.ListMaps(m.ctx)
	if err != nil {
		m.fatalf("ListMaps = %v; want nil", err)
	}
	want, err := m.ref.ListMaps(m.ctx)
	if err != nil {
		m.fatalf("reference ListMaps = %v", err)
	}
	if !equalStrings(got, want) {
		m.fatalf("ListMaps() = %s; want %s", qs(got), qs(want))
	}
}

func (m *model) listExpired() {
	now := m.now + m.rng.Int63n(400) - 200
	want, err := m.ref.ListExpired(m.ctx, now, allExpired)
	if err != nil {
		m.fatalf("reference ListExpired = %v", err)
	}
	if m.rng.Intn(2) == 0 {
		m.note("ListExpired(now=%d, all)", now)
		got, err := listExpiredAll(m.ctx, m.be, now)
		if err != nil {
			m.fatalf("%v", err)
		}
		if d := diffRecords(got, want); d != "" {
			m.fatalf("ListExpired(now=%d), ordered by (expiration, map, backup, key): %s", now, d)
		}
		return
	}
	// With a limit, ties at the cut may be broken differently: compare the
	// expiration times position by position and each record with the set.
	limit := 1 + m.rng.Intn(10)
	m.note("ListExpired(now=%d, limit=%d)", now, limit)
	got, err := m.be.ListExpired(m.ctx, now, limit)
	if err != nil {
		m.fatalf("ListExpired(now=%d, limit=%d) = %v; want nil", now, limit, err)
	}
	if n := min(limit, len(want)); len(got) != n {
		m.fatalf("ListExpired(now=%d, limit=%d) returned %d records; want %d", now, limit, len(got), n)
	}
	type id struct {
		mp, key string
		backup  bool
	}
	set := map[id]abi.Record{}
	for _, r := range want {
		set[id{r.Map, r.Key, r.Backup}] = r
	}
	for i, r := range got {
		w, ok := set[id{r.Map, r.Key, r.Backup}]
		if !ok || !sameRecord(r, w) {
			m.fatalf("ListExpired(now=%d, limit=%d) returned %s, which the reference does not list as expired", now, limit, fmtRec(r))
		}
		delete(set, id{r.Map, r.Key, r.Backup}) // a second copy is then reported as unknown
		if r.ExpirationTime != want[i].ExpirationTime {
			m.fatalf("ListExpired(now=%d, limit=%d) record %d is %s; want expiration %d (earliest first)", now, limit, i, fmtRec(r), want[i].ExpirationTime)
		}
	}
}

func (m *model) reopen() {
	m.note("Reopen()")
	m.be = reopen(m.t, m.h, m.be)
	m.compareAll()
}

func (m *model) compareAll() {
	m.listMaps()
	for _, mp := range modelMaps {
		for _, backup := range []bool{false, true} {
			m.compareScan(mp, backup, 0, 0)
		}
	}
	got, err := listExpiredAll(m.ctx, m.be, math.MaxInt64)
	if err != nil {
		m.fatalf("%v", err)
	}
	want, err := m.ref.ListExpired(m.ctx, math.MaxInt64, allExpired)
	if err != nil {
		m.fatalf("reference ListExpired = %v", err)
	}
	if d := diffRecords(got, want); d != "" {
		m.fatalf("ListExpired(now=max): %s", d)
	}
}
