;; A plugin whose get calls fd_read 2000 times, each with a million empty
;; iovecs: wazero walks them all and reads nothing, so no reader checks
;; the deadline, and the meter, which counts each call as one
;; instruction, would check it only after about a hundred thousand calls
;; (hours of the host's CPU). A call past the deadline must trap.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 130)
  ;; Description ["emptyiov", 1, 0, 4] at 512 (13 bytes).
  (data (i32.const 512) "\94\a8emptyiov\01\00\04")
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (local $i i32)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 13))
        (return (i64.const 13))))
    (if (i32.eq (local.get $op) (i32.const 4))
      (then
        ;; fd_read(stdin, a million zeroed iovecs at 0x10000, result at 8)
        (loop $calls
          (drop (call $read (i32.const 0) (i32.const 0x10000) (i32.const 1000000) (i32.const 8)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $calls (i32.lt_u (local.get $i) (i32.const 2000))))
        (i32.store8 (i32.const 1024) (i32.const 0x90))
        (return (i64.const 1))))
    (i64.const 0)))
