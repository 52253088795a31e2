;; A plugin whose get opens its data directory and reads it with one
;; fd_readdir into a buffer of 32 MiB: before the host read it in chunks,
;; wazero read the whole directory inside that one host call, which the
;; call's deadline could not stop (one lstat per entry: about 170 ms for
;; 50,000 entries, seconds for a million).
(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 520)
  ;; Description ["readdirlong", 1, 0, 4] at 512 (16 bytes).
  (data (i32.const 512) "\94\abreaddirlong\01\00\04")
  (data (i32.const 600) ".")
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 16))
        (return (i64.const 16))))
    (if (i32.eq (local.get $op) (i32.const 4))
      (then
        ;; path_open(fd 3 = /data, no lookup flags, ".", O_DIRECTORY,
        ;; no rights (read only), no fd flags, result at 64)
        (drop (call $open (i32.const 3) (i32.const 0) (i32.const 600) (i32.const 1)
          (i32.const 2) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 64)))
        ;; fd_readdir(fd, buf 0x10000, buf_len 32 MiB, cookie 0, bufused at 72)
        (drop (call $readdir (i32.load (i32.const 64)) (i32.const 0x10000) (i32.const 0x2000000)
          (i64.const 0) (i32.const 72)))
        (i32.store8 (i32.const 1024) (i32.const 0x90))
        (return (i64.const 1))))
    (i64.const 0)))
