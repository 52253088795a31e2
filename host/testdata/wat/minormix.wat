;; A plugin whose topgun_abi_version reports ABI 1.0 while its description
;; says 1.1. It implements the ops of 1.0 only: apply_runs (op 9, new in
;; 1.1) is answered with code 5 (unsupported), as WASM.md asks of an
;; unknown op. The host must not send it an op newer than either report.
(module
  (memory (export "memory") 2)
  ;; Description [name "mixed", 1, 1, 4] at 512.
  (data (i32.const 512) "\94\a5mixed\01\01\04")
  (data (i32.const 600) "unknown op")
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 10))
        (return (i64.const 10))))
    (if (i32.or (i32.eq (local.get $op) (i32.const 3)) (i32.eq (local.get $op) (i32.const 8)))
      (then (return (i64.const 0))))
    (if (i32.eq (local.get $op) (i32.const 9))
      (then
        (memory.copy (i32.const 1024) (i32.const 600) (i32.const 10))
        (return (i64.const 0x000000050000000a))))
    ;; anything else: an empty array
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
)
