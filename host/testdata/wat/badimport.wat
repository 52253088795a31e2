;; A plugin that imports host functions this server does not provide
;; (topgun_v1.http_get and env.abort): Load must refuse it before running
;; any code, naming each import.
(module
  (import "topgun_v1" "http_get" (func $get (param i32 i32) (result i32)))
  (import "env" "abort" (func $abort (param i32)))
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0)))
