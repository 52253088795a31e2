;; The shape of a Rust `crate-type = ["cdylib"]` for wasm32-wasip1 built by
;; a rustc without rust-lang/rust#161421 (checked with 1.63): rustc links no
;; crt1-reactor.o into a cdylib, so there is no _initialize, and wasm-ld
;; wraps every export in a run of the constructors and destructors
;; (the *.command_export functions). Load must refuse it, naming
;; _initialize (abi/WASM.md, section 1, says how to define it).
(module
  (memory (export "memory") 2)
  (func $__wasm_call_ctors)
  (func $__wasm_call_dtors)
  (func $version (result i32) (i32.const 0x10000))
  (func $buffer (param i32) (result i32) (i32.const 1024))
  (func $call (param i32 i32) (result i64) (i64.const 0))
  (func (export "topgun_abi_version") (result i32)
    (local i32)
    (call $__wasm_call_ctors)
    (local.set 0 (call $version))
    (call $__wasm_call_dtors)
    (local.get 0))
  (func (export "topgun_buffer") (param i32) (result i32)
    (local i32)
    (call $__wasm_call_ctors)
    (local.set 1 (call $buffer (local.get 0)))
    (call $__wasm_call_dtors)
    (local.get 1))
  (func (export "topgun_call") (param i32 i32) (result i64)
    (local i64)
    (call $__wasm_call_ctors)
    (local.set 2 (call $call (local.get 0) (local.get 1)))
    (call $__wasm_call_dtors)
    (local.get 2))
)
