;; The module's start function never returns: instantiation, and so Load,
;; must fail at the call deadline.
(module
  (memory (export "memory") 1)
  (start $spin)
  (func $spin (loop $l (br $l)))
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0)))
