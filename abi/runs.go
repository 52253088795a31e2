package abi

import "math"

// The apply_runs request (ABI 1.1) carries a batch as runs of consecutive
// mutations that share kind, map and backup flag, so that each mutation
// costs the guest three msgpack values (key, value, expiration) instead of
// seven. The order of mutations is kept: a run is cut wherever one of the
// three changes.
//
//	ApplyRunsRequest = [now: int, runs: array<Run>]
//	Run              = [kind: uint, map: str, backup: bool, items: array]
//
// A delete run's items are its keys; any other run's items are
// key, value, expiration_time triples, flattened.

// sameRun reports whether b continues the run of a.
func sameRun(a, b *Mutation) bool {
	return a.Kind == b.Kind && a.Backup == b.Backup && a.Map == b.Map
}

// ApplyRunsRequest encodes the body of apply_runs.
func (e *Encoder) ApplyRunsRequest(b *Batch) {
	ms := b.Mutations
	runs := 0
	for i := range ms {
		if i == 0 || !sameRun(&ms[i-1], &ms[i]) {
			runs++
		}
	}
	e.arr(2)
	e.int64(b.Now)
	e.arr(runs)
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && sameRun(&ms[i], &ms[j]) {
			j++
		}
		first := &ms[i]
		e.arr(4)
		e.uint64(uint64(first.Kind))
		e.str(first.Map)
		e.boolean(first.Backup)
		if first.Kind == OpDelete {
			e.arr(j - i)
			for k := i; k < j; k++ {
				e.str(ms[k].Key)
			}
		} else {
			e.arr(3 * (j - i))
			for k := i; k < j; k++ {
				e.str(ms[k].Key)
				e.bin(ms[k].Value)
				e.int64(ms[k].ExpirationTime)
			}
		}
		i = j
	}
}

// ApplyRunsRequest decodes the body of apply_runs into b, reusing the
// capacity of b.Mutations. More than MaxBatchOps mutations is an *Error
// with CodeInvalidArgument, found before the run that exceeds it is
// decoded.
func (d *Decoder) ApplyRunsRequest(b *Batch) error {
	n, err := d.arr("apply_runs request", 2)
	if err != nil {
		return err
	}
	if b.Now, err = d.int64("batch time"); err != nil {
		return err
	}
	// A run takes at least 5 bytes: a fixarray, kind, map, backup, items.
	runs, err := d.list("runs", 5)
	if err != nil {
		return err
	}
	old := len(b.Mutations)
	b.Mutations = b.Mutations[:0]
	for r := 0; r < runs; r++ {
		// The run header, like the items below, calls the primitives of
		// fast.go directly: every call that is not inlined costs 15-25 ns
		// inside wasm, and a batch of one put is one run.
		f, err := d.arrayLen()
		if err != nil || f < 4 || f > d.r.len() {
			return badRun(r, "array", f, err)
		}
		kind, err := d.uint64v()
		if err != nil || kind > math.MaxUint8 {
			return badRun(r, "kind", int(min(kind, math.MaxInt32)), err)
		}
		l, err := d.bytesLen()
		if err != nil || l > d.r.len() {
			return badRun(r, "map name", l, err)
		}
		mapName := d.reuseName(d.r.next(max(l, 0)))
		backup, err := d.boolv()
		if err != nil {
			return badRun(r, "backup", 0, err)
		}
		per := 3
		if OpKind(kind) == OpDelete {
			per = 1
		}
		items, err := d.arrayLen()
		if err != nil || items > d.r.len() {
			return badRun(r, "items", items, err)
		}
		items = max(items, 0)
		if items%per != 0 {
			return malformed("run %d: %d items, want a multiple of %d", r, items, per)
		}
		count := items / per
		at := len(b.Mutations)
		if at+count > MaxBatchOps {
			return Errorf(CodeInvalidArgument, "batch has more than %d mutations, the limit", MaxBatchOps)
		}
		if cap(b.Mutations) < at+count {
			grown := make([]Mutation, at, max(at+count, 2*cap(b.Mutations)))
			copy(grown, b.Mutations)
			b.Mutations = grown
		}
		b.Mutations = b.Mutations[:at+count]
		// As in ApplyRequest, the primitives are called directly: every
		// call that is not inlined costs 15-25 ns inside wasm.
		for i := at; i < at+count; i++ {
			m := &b.Mutations[i]
			m.Kind, m.Map, m.Backup = OpKind(kind), mapName, backup
			l, err := d.bytesLen()
			if err != nil || l > d.r.len() {
				return d.badMutation(i, "key", l, err)
			}
			m.Key = d.key(d.r.next(max(l, 0)))
			if per == 1 {
				m.Value, m.ExpirationTime = nil, 0
				continue
			}
			if l, err = d.bytesLen(); err != nil || l > d.r.len() {
				return d.badMutation(i, "value", l, err)
			}
			m.Value = d.value(l)
			if m.ExpirationTime, err = d.int64v(); err != nil {
				return d.badMutation(i, "expiration time", 0, err)
			}
		}
		if err := d.skip("run", f, 4); err != nil {
			return err
		}
	}
	if old > len(b.Mutations) {
		clear(b.Mutations[len(b.Mutations):old])
	}
	return d.skip("apply_runs request", n, 2)
}

func badRun(r int, what string, v int, err error) error {
	if err != nil {
		return malformed("run %d: %s: %v", r, what, err)
	}
	switch what {
	case "array":
		return malformed("run %d: array of %d elements, want at least 4", r, v)
	case "kind":
		return malformed("run %d: kind %d", r, v)
	}
	return malformed("run %d: %s: length %d exceeds the bytes left", r, what, v)
}
