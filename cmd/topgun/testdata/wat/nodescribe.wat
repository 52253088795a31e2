;; A plugin that answers open but traps in describe (op 1), which the
;; server never calls and `topgun plugin inspect` calls before open:
;; `topgun plugin test` must not pass it.
(module
  (memory (export "memory") 2)
  ;; Description [name "nodesc", 1, 1, 4] at 512.
  (data (i32.const 512) "\94\a6nodesc\01\01\04")
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10001))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.eq (local.get $op) (i32.const 1))
      (then unreachable))
    (if (i32.eq (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 11))
        (return (i64.const 11))))
    ;; close: an empty response
    (i64.const 0))
)
