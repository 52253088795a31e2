;; A plugin whose get opens a file in its data directory and renumbers it
;; to descriptor 2^26: wazero's descriptor table grows to hold every
;; number up to it, 512 MiB of the host's heap outside the memory limit
;; (16 GiB for 2^31-1), kept while the instance lives.
(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; Description ["renumber", 1, 0, 4] at 512 (13 bytes).
  (data (i32.const 512) "\94\a8renumber\01\00\04")
  (data (i32.const 600) "f")
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
        ;; path_open(fd 3 = /data, no lookup flags, "f", O_CREAT, all
        ;; rights, no fd flags, result at 64)
        (drop (call $open (i32.const 3) (i32.const 0) (i32.const 600) (i32.const 1)
          (i32.const 1) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 64)))
        (drop (call $renumber (i32.load (i32.const 64)) (i32.const 0x4000000)))
        (i32.store8 (i32.const 1024) (i32.const 0x90))
        (return (i64.const 1))))
    (i64.const 0)))
