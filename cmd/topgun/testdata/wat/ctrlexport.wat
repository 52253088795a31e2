;; A plugin that works (it is host/testdata/wat/trap.wat) but also exports a
;; function whose name holds a newline, a forged "capabilities:" line and
;; terminal escapes (clear the screen, red): what `topgun plugin inspect`
;; prints of a file must not be what the file says.
(module
  (import "topgun_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 4)
  ;; Description [name "trap", 1, 0, 4] at 512.
  (data (i32.const 512) "\94\a4\74\72\61\70\01\00\04")
  (func (export "_initialize"))
  (func (export "x\0acapabilities: durable, shared\1b[2J\1b[31m") (result i32) (i32.const 0))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 9))
        (return (i64.const 9))))
    ;; anything else: an empty array
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
)
