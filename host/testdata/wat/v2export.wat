;; A plugin whose topgun_abi_version reports 2.3: Load must refuse it
;; naming 2.3 and the host's version.
(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x20003))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0)))
