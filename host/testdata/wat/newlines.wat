;; A plugin whose get writes 64 MiB of newlines to stdout in one fd_write
;; of one iovec: 64 million log lines for the host to split, tens of
;; seconds of its CPU in one host call, which the meter counts as one
;; instruction. The writer must stop at the deadline within the write.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1040)
  ;; Description ["newlines", 1, 0, 4] at 512 (13 bytes).
  (data (i32.const 512) "\94\a8newlines\01\00\04")
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 13))
        (return (i64.const 13))))
    (if (i32.eq (local.get $op) (i32.const 4))
      (then
        (memory.fill (i32.const 0x10000) (i32.const 0x0a) (i32.const 0x4000000))
        ;; one iovec at 2048: 64 MiB at 0x10000
        (i32.store (i32.const 2048) (i32.const 0x10000))
        (i32.store (i32.const 2052) (i32.const 0x4000000))
        (drop (call $write (i32.const 1) (i32.const 2048) (i32.const 1) (i32.const 2056)))
        (i32.store8 (i32.const 1024) (i32.const 0x90))
        (return (i64.const 1))))
    (i64.const 0)))
