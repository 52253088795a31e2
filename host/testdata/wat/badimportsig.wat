;; A plugin whose imports name functions the host has, with the wrong
;; signatures, and a WASI function that does not exist: Load must refuse
;; it before instantiating it, naming each import.
(module
  (import "topgun_v1" "log" (func $log (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32)))
  (import "wasi_snapshot_preview1" "sock_listen" (func $listen (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0)))
