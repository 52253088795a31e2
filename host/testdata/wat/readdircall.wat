;; Not a plugin: a module for comparing the host's fd_readdir with
;; wazero's own. open opens the preopened directory again and returns its
;; descriptor (or minus the errno); readdir is fd_readdir.
(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 8) ".")
  (func (export "open") (result i32)
    (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 8) (i32.const 1)
      (i32.const 2) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)))
    (if (result i32) (local.get $e)
      (then (i32.sub (i32.const 0) (local.get $e)))
      (else (i32.load (i32.const 0)))))
  (func (export "readdir") (param i32 i32 i32 i64 i32) (result i32)
    (call $readdir (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4))))
