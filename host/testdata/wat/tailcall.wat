;; A plugin using a tail call (wat2wasm --enable-tail-call), beyond
;; WebAssembly 2.0: Load must refuse it as invalid (abi/WASM.md, section 1).
(module
  (memory (export "memory") 2)
  (func $f (result i32) (i32.const 1024))
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param i32) (result i32) (return_call $f))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0)))
