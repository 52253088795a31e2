;; A plugin whose get makes one poll_oneoff of 800,000 subscriptions to
;; stdin (64 MiB of its memory, subscriptions and events): wazero
;; allocates about 64 bytes of the host's heap for each, outside the
;; memory limit.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1030)
  ;; Description ["pollflood", 1, 0, 4] at 512 (14 bytes).
  (data (i32.const 512) "\94\a9pollflood\01\00\04")
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
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 14))
        (return (i64.const 14))))
    (if (i32.eq (local.get $op) (i32.const 4))
      (then
        ;; 800,000 subscriptions of 48 bytes at 0x10000, each of type
        ;; fd_read (1) on descriptor 0; events of 32 bytes after them
        (loop $subs
          (i32.store8 (i32.add (i32.const 0x10008) (i32.mul (local.get $i) (i32.const 48))) (i32.const 1))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $subs (i32.lt_u (local.get $i) (i32.const 800000))))
        (drop (call $poll (i32.const 0x10000) (i32.const 0x2500000) (i32.const 800000) (i32.const 8)))
        (i32.store8 (i32.const 1024) (i32.const 0x90))
        (return (i64.const 1))))
    (i64.const 0)))
