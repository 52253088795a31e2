;; A plugin whose topgun_abi_version reports ABI 1.0 while its description
;; (describe and open) says 2.0: the server refuses it at load (the open
;; description's major), so `topgun plugin inspect` must not pass it.
(module
  (memory (export "memory") 2)
  ;; Description [name "mixed", 2, 0, 4] at 512.
  (data (i32.const 512) "\94\a5mixed\02\00\04")
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
    ;; anything else: an empty array
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
)
