;; A plugin whose get opens its data directory 16 times more and reads
;; each with one fd_readdir of buf_len 0xffffffff from cookie 0: wazero
;; reads and keeps, per descriptor, up to buf_len/24 entries of the
;; directory on the host's heap, however little of them the guest's
;; memory can take. Counts at 80: opens that succeeded, then readdirs
;; that answered 0, then readdirs that answered EFAULT; the last open's
;; and readdir's errno at 92 and 96.
(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 2)
  ;; Description ["readdir", 1, 0, 4] at 512 (12 bytes).
  (data (i32.const 512) "\94\a7readdir\01\00\04")
  (data (i32.const 600) ".")
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (local $i i32)
    (local $e i32)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 12))
        (return (i64.const 12))))
    (if (i32.eq (local.get $op) (i32.const 4))
      (then
        (loop $dirs
          ;; path_open(fd 3 = /data, no lookup flags, ".", O_DIRECTORY,
          ;; no rights (read only), no fd flags, result at 64)
          (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 600) (i32.const 1)
            (i32.const 2) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 64)))
          (i32.store (i32.const 92) (local.get $e))
          (if (i32.eqz (local.get $e))
            (then
              (i32.store (i32.const 80) (i32.add (i32.load (i32.const 80)) (i32.const 1)))
              ;; fd_readdir(fd, buf 0x10000, buf_len 0xffffffff, cookie 0, bufused at 72)
              (local.set $e (call $readdir (i32.load (i32.const 64)) (i32.const 0x10000) (i32.const -1)
                (i64.const 0) (i32.const 72)))
              (i32.store (i32.const 96) (local.get $e))
              (if (i32.eqz (local.get $e))
                (then (i32.store (i32.const 84) (i32.add (i32.load (i32.const 84)) (i32.const 1)))))
              (if (i32.eq (local.get $e) (i32.const 21))
                (then (i32.store (i32.const 88) (i32.add (i32.load (i32.const 88)) (i32.const 1)))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $dirs (i32.lt_u (local.get $i) (i32.const 16))))
        (i32.store8 (i32.const 1024) (i32.const 0x90))
        (return (i64.const 1))))
    (i64.const 0)))
