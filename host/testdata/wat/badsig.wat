;; topgun_call has the wrong signature.
(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32) (result i32) (i32.const 0)))
