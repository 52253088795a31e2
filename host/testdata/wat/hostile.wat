;; A plugin that answers describe and open correctly and misbehaves in every
;; data op, to test that the host never trusts what comes back:
;;   apply (3):        ok, empty response
;;   get (4):          a response that is not msgpack (0xc1)
;;   scan (5):         a response length over any limit
;;   list_maps (6):    reserved status bits set
;;   list_expired (7): traps
;;   close (8):        ok
;; The buffer is fixed at 1024 with 64 KiB of room. Global $calls counts
;; topgun_call invocations so a test can see fresh instances.
(module
  (import "topgun_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  ;; Description ["hostile", 1, 0, 4] at 512 (12 bytes).
  (data (i32.const 512) "\94\a7hostile\01\00\04")
  (data (i32.const 600) "hostile plugin started")
  (func (export "_initialize")
    (call $log (i32.const 3) (i32.const 600) (i32.const 22)))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then
        (memory.copy (i32.const 1024) (i32.const 512) (i32.const 12))
        (return (i64.const 12))))
    (if (i32.eq (local.get $op) (i32.const 4))
      (then
        (i32.store8 (i32.const 1024) (i32.const 0xc1))
        (return (i64.const 1))))
    (if (i32.eq (local.get $op) (i32.const 5))
      (then (return (i64.const 0x7fffffff))))
    (if (i32.eq (local.get $op) (i32.const 6))
      (then (return (i64.const 0x0004000000000000))))
    (if (i32.eq (local.get $op) (i32.const 7))
      (then unreachable))
    (i64.const 0)))
