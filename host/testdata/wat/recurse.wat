;; A get of map "evil" recurses without end through a function with large
;; frames: wazero grows the call stack on the server's heap, outside the
;; memory limit, until its ceiling, unless the host bounds the depth.
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
    (call $rec (i64.const 0))
    drop
    ;; an empty array (not reached)
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
  ;; 64 live i64 locals, so each frame holds them across the call.
  (func $rec (param $n i64) (result i64)
    (local $l0 i64)
    (local $l1 i64)
    (local $l2 i64)
    (local $l3 i64)
    (local $l4 i64)
    (local $l5 i64)
    (local $l6 i64)
    (local $l7 i64)
    (local $l8 i64)
    (local $l9 i64)
    (local $l10 i64)
    (local $l11 i64)
    (local $l12 i64)
    (local $l13 i64)
    (local $l14 i64)
    (local $l15 i64)
    (local $l16 i64)
    (local $l17 i64)
    (local $l18 i64)
    (local $l19 i64)
    (local $l20 i64)
    (local $l21 i64)
    (local $l22 i64)
    (local $l23 i64)
    (local $l24 i64)
    (local $l25 i64)
    (local $l26 i64)
    (local $l27 i64)
    (local $l28 i64)
    (local $l29 i64)
    (local $l30 i64)
    (local $l31 i64)
    (local $l32 i64)
    (local $l33 i64)
    (local $l34 i64)
    (local $l35 i64)
    (local $l36 i64)
    (local $l37 i64)
    (local $l38 i64)
    (local $l39 i64)
    (local $l40 i64)
    (local $l41 i64)
    (local $l42 i64)
    (local $l43 i64)
    (local $l44 i64)
    (local $l45 i64)
    (local $l46 i64)
    (local $l47 i64)
    (local $l48 i64)
    (local $l49 i64)
    (local $l50 i64)
    (local $l51 i64)
    (local $l52 i64)
    (local $l53 i64)
    (local $l54 i64)
    (local $l55 i64)
    (local $l56 i64)
    (local $l57 i64)
    (local $l58 i64)
    (local $l59 i64)
    (local $l60 i64)
    (local $l61 i64)
    (local $l62 i64)
    (local $l63 i64)
    (local.set $l0 (i64.add (local.get $n) (i64.const 0)))
    (local.set $l1 (i64.add (local.get $n) (i64.const 1)))
    (local.set $l2 (i64.add (local.get $n) (i64.const 2)))
    (local.set $l3 (i64.add (local.get $n) (i64.const 3)))
    (local.set $l4 (i64.add (local.get $n) (i64.const 4)))
    (local.set $l5 (i64.add (local.get $n) (i64.const 5)))
    (local.set $l6 (i64.add (local.get $n) (i64.const 6)))
    (local.set $l7 (i64.add (local.get $n) (i64.const 7)))
    (local.set $l8 (i64.add (local.get $n) (i64.const 8)))
    (local.set $l9 (i64.add (local.get $n) (i64.const 9)))
    (local.set $l10 (i64.add (local.get $n) (i64.const 10)))
    (local.set $l11 (i64.add (local.get $n) (i64.const 11)))
    (local.set $l12 (i64.add (local.get $n) (i64.const 12)))
    (local.set $l13 (i64.add (local.get $n) (i64.const 13)))
    (local.set $l14 (i64.add (local.get $n) (i64.const 14)))
    (local.set $l15 (i64.add (local.get $n) (i64.const 15)))
    (local.set $l16 (i64.add (local.get $n) (i64.const 16)))
    (local.set $l17 (i64.add (local.get $n) (i64.const 17)))
    (local.set $l18 (i64.add (local.get $n) (i64.const 18)))
    (local.set $l19 (i64.add (local.get $n) (i64.const 19)))
    (local.set $l20 (i64.add (local.get $n) (i64.const 20)))
    (local.set $l21 (i64.add (local.get $n) (i64.const 21)))
    (local.set $l22 (i64.add (local.get $n) (i64.const 22)))
    (local.set $l23 (i64.add (local.get $n) (i64.const 23)))
    (local.set $l24 (i64.add (local.get $n) (i64.const 24)))
    (local.set $l25 (i64.add (local.get $n) (i64.const 25)))
    (local.set $l26 (i64.add (local.get $n) (i64.const 26)))
    (local.set $l27 (i64.add (local.get $n) (i64.const 27)))
    (local.set $l28 (i64.add (local.get $n) (i64.const 28)))
    (local.set $l29 (i64.add (local.get $n) (i64.const 29)))
    (local.set $l30 (i64.add (local.get $n) (i64.const 30)))
    (local.set $l31 (i64.add (local.get $n) (i64.const 31)))
    (local.set $l32 (i64.add (local.get $n) (i64.const 32)))
    (local.set $l33 (i64.add (local.get $n) (i64.const 33)))
    (local.set $l34 (i64.add (local.get $n) (i64.const 34)))
    (local.set $l35 (i64.add (local.get $n) (i64.const 35)))
    (local.set $l36 (i64.add (local.get $n) (i64.const 36)))
    (local.set $l37 (i64.add (local.get $n) (i64.const 37)))
    (local.set $l38 (i64.add (local.get $n) (i64.const 38)))
    (local.set $l39 (i64.add (local.get $n) (i64.const 39)))
    (local.set $l40 (i64.add (local.get $n) (i64.const 40)))
    (local.set $l41 (i64.add (local.get $n) (i64.const 41)))
    (local.set $l42 (i64.add (local.get $n) (i64.const 42)))
    (local.set $l43 (i64.add (local.get $n) (i64.const 43)))
    (local.set $l44 (i64.add (local.get $n) (i64.const 44)))
    (local.set $l45 (i64.add (local.get $n) (i64.const 45)))
    (local.set $l46 (i64.add (local.get $n) (i64.const 46)))
    (local.set $l47 (i64.add (local.get $n) (i64.const 47)))
    (local.set $l48 (i64.add (local.get $n) (i64.const 48)))
    (local.set $l49 (i64.add (local.get $n) (i64.const 49)))
    (local.set $l50 (i64.add (local.get $n) (i64.const 50)))
    (local.set $l51 (i64.add (local.get $n) (i64.const 51)))
    (local.set $l52 (i64.add (local.get $n) (i64.const 52)))
    (local.set $l53 (i64.add (local.get $n) (i64.const 53)))
    (local.set $l54 (i64.add (local.get $n) (i64.const 54)))
    (local.set $l55 (i64.add (local.get $n) (i64.const 55)))
    (local.set $l56 (i64.add (local.get $n) (i64.const 56)))
    (local.set $l57 (i64.add (local.get $n) (i64.const 57)))
    (local.set $l58 (i64.add (local.get $n) (i64.const 58)))
    (local.set $l59 (i64.add (local.get $n) (i64.const 59)))
    (local.set $l60 (i64.add (local.get $n) (i64.const 60)))
    (local.set $l61 (i64.add (local.get $n) (i64.const 61)))
    (local.set $l62 (i64.add (local.get $n) (i64.const 62)))
    (local.set $l63 (i64.add (local.get $n) (i64.const 63)))
    (call $rec (i64.add (local.get $n) (i64.const 1)))
    local.get $l0
    i64.add
    local.get $l1
    i64.add
    local.get $l2
    i64.add
    local.get $l3
    i64.add
    local.get $l4
    i64.add
    local.get $l5
    i64.add
    local.get $l6
    i64.add
    local.get $l7
    i64.add
    local.get $l8
    i64.add
    local.get $l9
    i64.add
    local.get $l10
    i64.add
    local.get $l11
    i64.add
    local.get $l12
    i64.add
    local.get $l13
    i64.add
    local.get $l14
    i64.add
    local.get $l15
    i64.add
    local.get $l16
    i64.add
    local.get $l17
    i64.add
    local.get $l18
    i64.add
    local.get $l19
    i64.add
    local.get $l20
    i64.add
    local.get $l21
    i64.add
    local.get $l22
    i64.add
    local.get $l23
    i64.add
    local.get $l24
    i64.add
    local.get $l25
    i64.add
    local.get $l26
    i64.add
    local.get $l27
    i64.add
    local.get $l28
    i64.add
    local.get $l29
    i64.add
    local.get $l30
    i64.add
    local.get $l31
    i64.add
    local.get $l32
    i64.add
    local.get $l33
    i64.add
    local.get $l34
    i64.add
    local.get $l35
    i64.add
    local.get $l36
    i64.add
    local.get $l37
    i64.add
    local.get $l38
    i64.add
    local.get $l39
    i64.add
    local.get $l40
    i64.add
    local.get $l41
    i64.add
    local.get $l42
    i64.add
    local.get $l43
    i64.add
    local.get $l44
    i64.add
    local.get $l45
    i64.add
    local.get $l46
    i64.add
    local.get $l47
    i64.add
    local.get $l48
    i64.add
    local.get $l49
    i64.add
    local.get $l50
    i64.add
    local.get $l51
    i64.add
    local.get $l52
    i64.add
    local.get $l53
    i64.add
    local.get $l54
    i64.add
    local.get $l55
    i64.add
    local.get $l56
    i64.add
    local.get $l57
    i64.add
    local.get $l58
    i64.add
    local.get $l59
    i64.add
    local.get $l60
    i64.add
    local.get $l61
    i64.add
    local.get $l62
    i64.add
    local.get $l63
    i64.add
  )
)
