;; A module importing a function whose name holds a newline, a forged line
;; and terminal escapes: the load error that names the import must not
;; carry them to the reader's terminal.
(module
  (import "env" "x\0atopgun plugin inspect: ok\1b[2J" (func $f))
  (memory (export "memory") 1)
  (func (export "_initialize") (call $f))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "topgun_call") (param i32 i32) (result i64) (i64.const 0))
)
