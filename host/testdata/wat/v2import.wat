;; A plugin built for ABI major 2: it imports from topgun_v2, so Load must
;; refuse it before running any code, naming both majors.
(module
  (import "topgun_v2" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x20000))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0)))
