;; Invalid: a get of map "evil" loops forever, refilling global 0, which
;; the module does not have. Metered, global 0 would be the meter's budget
;; and the loop would never reach its check: the deadline could not stop
;; it. The host must refuse the module, as wazero refuses the original.
;; (Built without validation: node wat2wasm_novalidate.js.)
;;
;; It answers describe and open as plugin "loop" and serves every op
;; with an empty, well-formed answer, except a get of map "evil", which
;; misbehaves as described above (the adversaries of host/fault_test.go).
(module
  (import "topgun_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 4)
  ;; Description [name, 1, 0, 4] at 512.
  (data (i32.const 512) "\94\a4\6c\6f\6f\70\01\00\04")
  (func (export "_initialize"))
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
    (if (i32.or (i32.eq (local.get $op) (i32.const 3)) (i32.eq (local.get $op) (i32.const 8)))
      (then (return (i64.const 0))))
    (if (i32.eq (local.get $op) (i32.const 5))
      (then
        ;; [[], nil]: an empty page
        (i32.store8 (i32.const 1024) (i32.const 0x92))
        (i32.store8 (i32.const 1025) (i32.const 0x90))
        (i32.store8 (i32.const 1026) (i32.const 0xc0))
        (return (i64.const 3))))
    ;; get of map "evil": the request starts 0x93 0xa4 "evil"
    (if (i32.and (i32.eq (local.get $op) (i32.const 4))
                 (i32.eq (i32.load (i32.const 1025)) (i32.const 0x697665a4)))
      (then (return (call $evil))))
    ;; anything else: an empty array
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
  (func $evil (result i64)
    (loop $l
      (global.set 0 (i32.const 0x7fffffff))
      (br $l))
    unreachable)
)
