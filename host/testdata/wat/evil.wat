;; A multi_instance plugin that misbehaves on request. It answers describe
;; and open as plugin "evil" (capabilities atomic_batch, multi_instance),
;; apply with success, and a get of map "evil" (the request starts
;; 0x93 0xa4 "evil") by the first byte of its first key:
;;   t  traps (unreachable)
;;   m  answers StatusBufferMoved for a 5-byte response, then its
;;      topgun_buffer answers 0 (it claims to have moved its buffer and
;;      then cannot say where)
;;   l  calls the log import with wild arguments (a huge length, a
;;      pointer past memory, a negative level, a range ending exactly at
;;      the end of memory), then answers an empty list
;;   n  logs one message holding newlines, the middle line dressed as a
;;      server log entry, then answers an empty list
;;   s  spins for 700 ms (by the wall clock), answers StatusBufferMoved
;;      for an empty list, and its topgun_buffer then spins 700 ms more:
;;      each wasm call stays under a 1 s timeout, the op does not
;; Any other get answers an empty list. close traps when the i32 at 28 is
;; not zero (a test stages it).
(module
  (import "topgun_v1" "log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 2)
  ;; Description ["evil", 1, 0, 0x14] at 512 (9 bytes).
  (data (i32.const 512) "\94\a4\65\76\69\6c\01\00\14")
  (data (i32.const 700) "one\n2026-11-26T00:00:00.000Z [ERROR] server: forged by a plugin\nthree")
  (global $lie (mut i32) (i32.const 0))
  (global $slow (mut i32) (i32.const 0))
  ;; now returns the wall clock in nanoseconds.
  (func $now (result i64)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 40)))
    (i64.load (i32.const 40)))
  ;; spin runs until ms milliseconds have passed.
  (func $spin (param $ms i64)
    (local $until i64)
    (local.set $until (i64.add (call $now) (i64.mul (local.get $ms) (i64.const 1000000))))
    (loop $again
      (br_if $again (i64.lt_u (call $now) (local.get $until)))))
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (global.get $slow)
      (then
        (global.set $slow (i32.const 0))
        (call $spin (i64.const 700))))
    (if (global.get $lie)
      (then
        (global.set $lie (i32.const 0))
        (return (i32.const 0))))
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (local $k i32)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 9))
        (return (i64.const 9))))
    (if (i32.eq (local.get $op) (i32.const 8))
      (then
        (if (i32.load (i32.const 28)) (then unreachable))
        (return (i64.const 0))))
    (if (i32.and (i32.eq (local.get $op) (i32.const 4))
                 (i32.eq (i32.load (i32.const 1025)) (i32.const 0x697665a4)))
      (then
        (local.set $k (i32.load8_u (i32.const 1033)))
        (if (i32.eq (local.get $k) (i32.const 0x74)) (then unreachable))
        (if (i32.eq (local.get $k) (i32.const 0x6d))
          (then
            (global.set $lie (i32.const 1))
            (return (i64.const 0x0001000000000005))))
        (if (i32.eq (local.get $k) (i32.const 0x6e))
          (then (call $log (i32.const 3) (i32.const 700) (i32.const 69))))
        (if (i32.eq (local.get $k) (i32.const 0x73))
          (then
            (call $spin (i64.const 700))
            (global.set $slow (i32.const 1))
            (i32.store8 (i32.const 1024) (i32.const 0x90))
            (return (i64.const 0x0001000000000001))))
        (if (i32.eq (local.get $k) (i32.const 0x6c))
          (then
            (call $log (i32.const 3) (i32.const 0) (i32.const -1))
            (call $log (i32.const -5) (i32.const -16) (i32.const 16))
            (call $log (i32.const 0x7fffffff) (i32.const 131000) (i32.const 72))
            (call $log (i32.const 4) (i32.const 131064) (i32.const 8))))))
    (if (i32.eq (local.get $op) (i32.const 3))
      (then (return (i64.const 0))))
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
)
