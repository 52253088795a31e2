;; Code shapes the meter must rewrite without changing their results:
;; imports before and after the check function's index, loops, nested
;; blocks, br_table, direct and indirect calls, ref.func, element segments,
;; a start function, globals, memory and bulk memory, multi-value blocks,
;; and every way out of a function body.
;; Regenerate shapes.wasm with: wat2wasm --debug-names shapes.wat
(module
  (type $binop (func (param i32 i32) (result i32)))
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $started (mut i32) (i32.const 0))
  (global $fref funcref (ref.func $add))
  (table $t 4 funcref)
  (elem (table $t) (i32.const 0) func $add $mul)
  (elem declare func $sub)
  (start $start)
  (func $start (global.set $started (i32.const 7)))
  (func $add (type $binop) (i32.add (local.get 0) (local.get 1)))
  (func $mul (type $binop) (i32.mul (local.get 0) (local.get 1)))
  (func $sub (type $binop) (i32.sub (local.get 0) (local.get 1)))

  ;; sum of i*i for i in [0, n) through an indirect call, plus the start flag.
  (func (export "sumsq") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc
          (call_indirect (type $binop)
            (local.get $acc)
            (call_indirect (type $binop) (local.get $i) (local.get $i) (i32.const 1))
            (i32.const 0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.add (local.get $acc) (global.get $started)))

  ;; fib by recursion: calls without loops.
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  ;; br_table over nested blocks, a multi-value loop and an imported call.
  (func (export "mix") (param $k i32) (result i32)
    (local $r i32)
    (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 (local.get $k)))
      (local.set $r (i32.const 10)) (br $b2))
      (local.set $r (i32.const 20)))
    (i32.const 3) (i32.const 4)
    (loop $l (param i32 i32) (result i32)
      (i32.add)
      (local.get $r)
      (i32.add))
    (call $twice))

  ;; bulk memory and a funcref global called through the table.
  (func (export "bulk") (result i32)
    (memory.fill (i32.const 100) (i32.const 9) (i32.const 10))
    (memory.copy (i32.const 200) (i32.const 100) (i32.const 10))
    (table.set $t (i32.const 2) (global.get $fref))
    (table.set $t (i32.const 3) (ref.func $sub))
    (i32.add
      (i32.load8_u (i32.const 209))
      (call_indirect (type $binop) (i32.const 50) (i32.const 8) (i32.const 3))))

  ;; an endless loop without calls or memory access.
  (func (export "spin") (loop $forever (br $forever)))

  ;; unbounded recursion without loops.
  (func $deep (export "deep") (param $n i32) (result i32)
    (call $deep (i32.add (local.get $n) (i32.const 1))))
  ;; two results from parameters, one way out by return.
  (func $pair (param $x i32) (result i32 i32)
    (if (i32.eqz (local.get $x))
      (then (return (i32.const 1) (i32.const 2))))
    (local.get $x)
    (i32.const 3))

  ;; every way out of a body: return from nested blocks, br_if and
  ;; br_table to the function's label, and its end.
  (func (export "exits") (param $k i32) (result i32)
    (block $out
      (block $inner
        (br_if $inner (local.get $k))
        (return (i32.const 100)))
      (drop (br_if 1 (i32.const 101) (i32.eq (local.get $k) (i32.const 1))))
      (if (i32.eq (local.get $k) (i32.const 2))
        (then (br_table 2 2 (i32.const 102) (i32.const 0)))))
    (call $pair (i32.sub (local.get $k) (i32.const 3)))
    (i32.add)))
