;; A plugin using exception handling (wat2wasm --enable-exceptions), beyond
;; WebAssembly 2.0: Load must refuse it as invalid (abi/WASM.md, section 1).
(module
  (tag $e)
  (memory (export "memory") 2)
  (func (export "_initialize") (try (do (throw $e)) (catch $e)))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0)))
