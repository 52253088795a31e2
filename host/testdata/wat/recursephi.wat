;; A get of map "evil" recurses without end through a function of 100
;; i64 locals and 100 nested loops, the innermost of which makes the
;; recursive call and then changes every local: few instructions, but the
;; compiler makes a value per local per loop header and gives every value
;; live across the call a stack slot, about 100 KB per frame. The meter's
;; frame estimate must count those merged values, or the recursion reaches
;; wazero's own ceiling (150 MiB of heap) before the stack bound.
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
  (local $l64 i64)
  (local $l65 i64)
  (local $l66 i64)
  (local $l67 i64)
  (local $l68 i64)
  (local $l69 i64)
  (local $l70 i64)
  (local $l71 i64)
  (local $l72 i64)
  (local $l73 i64)
  (local $l74 i64)
  (local $l75 i64)
  (local $l76 i64)
  (local $l77 i64)
  (local $l78 i64)
  (local $l79 i64)
  (local $l80 i64)
  (local $l81 i64)
  (local $l82 i64)
  (local $l83 i64)
  (local $l84 i64)
  (local $l85 i64)
  (local $l86 i64)
  (local $l87 i64)
  (local $l88 i64)
  (local $l89 i64)
  (local $l90 i64)
  (local $l91 i64)
  (local $l92 i64)
  (local $l93 i64)
  (local $l94 i64)
  (local $l95 i64)
  (local $l96 i64)
  (local $l97 i64)
  (local $l98 i64)
  (local $l99 i64)
  loop $L0
  loop $L1
  loop $L2
  loop $L3
  loop $L4
  loop $L5
  loop $L6
  loop $L7
  loop $L8
  loop $L9
  loop $L10
  loop $L11
  loop $L12
  loop $L13
  loop $L14
  loop $L15
  loop $L16
  loop $L17
  loop $L18
  loop $L19
  loop $L20
  loop $L21
  loop $L22
  loop $L23
  loop $L24
  loop $L25
  loop $L26
  loop $L27
  loop $L28
  loop $L29
  loop $L30
  loop $L31
  loop $L32
  loop $L33
  loop $L34
  loop $L35
  loop $L36
  loop $L37
  loop $L38
  loop $L39
  loop $L40
  loop $L41
  loop $L42
  loop $L43
  loop $L44
  loop $L45
  loop $L46
  loop $L47
  loop $L48
  loop $L49
  loop $L50
  loop $L51
  loop $L52
  loop $L53
  loop $L54
  loop $L55
  loop $L56
  loop $L57
  loop $L58
  loop $L59
  loop $L60
  loop $L61
  loop $L62
  loop $L63
  loop $L64
  loop $L65
  loop $L66
  loop $L67
  loop $L68
  loop $L69
  loop $L70
  loop $L71
  loop $L72
  loop $L73
  loop $L74
  loop $L75
  loop $L76
  loop $L77
  loop $L78
  loop $L79
  loop $L80
  loop $L81
  loop $L82
  loop $L83
  loop $L84
  loop $L85
  loop $L86
  loop $L87
  loop $L88
  loop $L89
  loop $L90
  loop $L91
  loop $L92
  loop $L93
  loop $L94
  loop $L95
  loop $L96
  loop $L97
  loop $L98
  loop $L99
   local.get $n i64.const 1 i64.add call $rec drop
   local.get $l0 local.get $n i64.add local.set $l0
   local.get $l1 local.get $n i64.add local.set $l1
   local.get $l2 local.get $n i64.add local.set $l2
   local.get $l3 local.get $n i64.add local.set $l3
   local.get $l4 local.get $n i64.add local.set $l4
   local.get $l5 local.get $n i64.add local.set $l5
   local.get $l6 local.get $n i64.add local.set $l6
   local.get $l7 local.get $n i64.add local.set $l7
   local.get $l8 local.get $n i64.add local.set $l8
   local.get $l9 local.get $n i64.add local.set $l9
   local.get $l10 local.get $n i64.add local.set $l10
   local.get $l11 local.get $n i64.add local.set $l11
   local.get $l12 local.get $n i64.add local.set $l12
   local.get $l13 local.get $n i64.add local.set $l13
   local.get $l14 local.get $n i64.add local.set $l14
   local.get $l15 local.get $n i64.add local.set $l15
   local.get $l16 local.get $n i64.add local.set $l16
   local.get $l17 local.get $n i64.add local.set $l17
   local.get $l18 local.get $n i64.add local.set $l18
   local.get $l19 local.get $n i64.add local.set $l19
   local.get $l20 local.get $n i64.add local.set $l20
   local.get $l21 local.get $n i64.add local.set $l21
   local.get $l22 local.get $n i64.add local.set $l22
   local.get $l23 local.get $n i64.add local.set $l23
   local.get $l24 local.get $n i64.add local.set $l24
   local.get $l25 local.get $n i64.add local.set $l25
   local.get $l26 local.get $n i64.add local.set $l26
   local.get $l27 local.get $n i64.add local.set $l27
   local.get $l28 local.get $n i64.add local.set $l28
   local.get $l29 local.get $n i64.add local.set $l29
   local.get $l30 local.get $n i64.add local.set $l30
   local.get $l31 local.get $n i64.add local.set $l31
   local.get $l32 local.get $n i64.add local.set $l32
   local.get $l33 local.get $n i64.add local.set $l33
   local.get $l34 local.get $n i64.add local.set $l34
   local.get $l35 local.get $n i64.add local.set $l35
   local.get $l36 local.get $n i64.add local.set $l36
   local.get $l37 local.get $n i64.add local.set $l37
   local.get $l38 local.get $n i64.add local.set $l38
   local.get $l39 local.get $n i64.add local.set $l39
   local.get $l40 local.get $n i64.add local.set $l40
   local.get $l41 local.get $n i64.add local.set $l41
   local.get $l42 local.get $n i64.add local.set $l42
   local.get $l43 local.get $n i64.add local.set $l43
   local.get $l44 local.get $n i64.add local.set $l44
   local.get $l45 local.get $n i64.add local.set $l45
   local.get $l46 local.get $n i64.add local.set $l46
   local.get $l47 local.get $n i64.add local.set $l47
   local.get $l48 local.get $n i64.add local.set $l48
   local.get $l49 local.get $n i64.add local.set $l49
   local.get $l50 local.get $n i64.add local.set $l50
   local.get $l51 local.get $n i64.add local.set $l51
   local.get $l52 local.get $n i64.add local.set $l52
   local.get $l53 local.get $n i64.add local.set $l53
   local.get $l54 local.get $n i64.add local.set $l54
   local.get $l55 local.get $n i64.add local.set $l55
   local.get $l56 local.get $n i64.add local.set $l56
   local.get $l57 local.get $n i64.add local.set $l57
   local.get $l58 local.get $n i64.add local.set $l58
   local.get $l59 local.get $n i64.add local.set $l59
   local.get $l60 local.get $n i64.add local.set $l60
   local.get $l61 local.get $n i64.add local.set $l61
   local.get $l62 local.get $n i64.add local.set $l62
   local.get $l63 local.get $n i64.add local.set $l63
   local.get $l64 local.get $n i64.add local.set $l64
   local.get $l65 local.get $n i64.add local.set $l65
   local.get $l66 local.get $n i64.add local.set $l66
   local.get $l67 local.get $n i64.add local.set $l67
   local.get $l68 local.get $n i64.add local.set $l68
   local.get $l69 local.get $n i64.add local.set $l69
   local.get $l70 local.get $n i64.add local.set $l70
   local.get $l71 local.get $n i64.add local.set $l71
   local.get $l72 local.get $n i64.add local.set $l72
   local.get $l73 local.get $n i64.add local.set $l73
   local.get $l74 local.get $n i64.add local.set $l74
   local.get $l75 local.get $n i64.add local.set $l75
   local.get $l76 local.get $n i64.add local.set $l76
   local.get $l77 local.get $n i64.add local.set $l77
   local.get $l78 local.get $n i64.add local.set $l78
   local.get $l79 local.get $n i64.add local.set $l79
   local.get $l80 local.get $n i64.add local.set $l80
   local.get $l81 local.get $n i64.add local.set $l81
   local.get $l82 local.get $n i64.add local.set $l82
   local.get $l83 local.get $n i64.add local.set $l83
   local.get $l84 local.get $n i64.add local.set $l84
   local.get $l85 local.get $n i64.add local.set $l85
   local.get $l86 local.get $n i64.add local.set $l86
   local.get $l87 local.get $n i64.add local.set $l87
   local.get $l88 local.get $n i64.add local.set $l88
   local.get $l89 local.get $n i64.add local.set $l89
   local.get $l90 local.get $n i64.add local.set $l90
   local.get $l91 local.get $n i64.add local.set $l91
   local.get $l92 local.get $n i64.add local.set $l92
   local.get $l93 local.get $n i64.add local.set $l93
   local.get $l94 local.get $n i64.add local.set $l94
   local.get $l95 local.get $n i64.add local.set $l95
   local.get $l96 local.get $n i64.add local.set $l96
   local.get $l97 local.get $n i64.add local.set $l97
   local.get $l98 local.get $n i64.add local.set $l98
   local.get $l99 local.get $n i64.add local.set $l99
   local.get $n i64.eqz br_if $L99 end
   local.get $n i64.eqz br_if $L98 end
   local.get $n i64.eqz br_if $L97 end
   local.get $n i64.eqz br_if $L96 end
   local.get $n i64.eqz br_if $L95 end
   local.get $n i64.eqz br_if $L94 end
   local.get $n i64.eqz br_if $L93 end
   local.get $n i64.eqz br_if $L92 end
   local.get $n i64.eqz br_if $L91 end
   local.get $n i64.eqz br_if $L90 end
   local.get $n i64.eqz br_if $L89 end
   local.get $n i64.eqz br_if $L88 end
   local.get $n i64.eqz br_if $L87 end
   local.get $n i64.eqz br_if $L86 end
   local.get $n i64.eqz br_if $L85 end
   local.get $n i64.eqz br_if $L84 end
   local.get $n i64.eqz br_if $L83 end
   local.get $n i64.eqz br_if $L82 end
   local.get $n i64.eqz br_if $L81 end
   local.get $n i64.eqz br_if $L80 end
   local.get $n i64.eqz br_if $L79 end
   local.get $n i64.eqz br_if $L78 end
   local.get $n i64.eqz br_if $L77 end
   local.get $n i64.eqz br_if $L76 end
   local.get $n i64.eqz br_if $L75 end
   local.get $n i64.eqz br_if $L74 end
   local.get $n i64.eqz br_if $L73 end
   local.get $n i64.eqz br_if $L72 end
   local.get $n i64.eqz br_if $L71 end
   local.get $n i64.eqz br_if $L70 end
   local.get $n i64.eqz br_if $L69 end
   local.get $n i64.eqz br_if $L68 end
   local.get $n i64.eqz br_if $L67 end
   local.get $n i64.eqz br_if $L66 end
   local.get $n i64.eqz br_if $L65 end
   local.get $n i64.eqz br_if $L64 end
   local.get $n i64.eqz br_if $L63 end
   local.get $n i64.eqz br_if $L62 end
   local.get $n i64.eqz br_if $L61 end
   local.get $n i64.eqz br_if $L60 end
   local.get $n i64.eqz br_if $L59 end
   local.get $n i64.eqz br_if $L58 end
   local.get $n i64.eqz br_if $L57 end
   local.get $n i64.eqz br_if $L56 end
   local.get $n i64.eqz br_if $L55 end
   local.get $n i64.eqz br_if $L54 end
   local.get $n i64.eqz br_if $L53 end
   local.get $n i64.eqz br_if $L52 end
   local.get $n i64.eqz br_if $L51 end
   local.get $n i64.eqz br_if $L50 end
   local.get $n i64.eqz br_if $L49 end
   local.get $n i64.eqz br_if $L48 end
   local.get $n i64.eqz br_if $L47 end
   local.get $n i64.eqz br_if $L46 end
   local.get $n i64.eqz br_if $L45 end
   local.get $n i64.eqz br_if $L44 end
   local.get $n i64.eqz br_if $L43 end
   local.get $n i64.eqz br_if $L42 end
   local.get $n i64.eqz br_if $L41 end
   local.get $n i64.eqz br_if $L40 end
   local.get $n i64.eqz br_if $L39 end
   local.get $n i64.eqz br_if $L38 end
   local.get $n i64.eqz br_if $L37 end
   local.get $n i64.eqz br_if $L36 end
   local.get $n i64.eqz br_if $L35 end
   local.get $n i64.eqz br_if $L34 end
   local.get $n i64.eqz br_if $L33 end
   local.get $n i64.eqz br_if $L32 end
   local.get $n i64.eqz br_if $L31 end
   local.get $n i64.eqz br_if $L30 end
   local.get $n i64.eqz br_if $L29 end
   local.get $n i64.eqz br_if $L28 end
   local.get $n i64.eqz br_if $L27 end
   local.get $n i64.eqz br_if $L26 end
   local.get $n i64.eqz br_if $L25 end
   local.get $n i64.eqz br_if $L24 end
   local.get $n i64.eqz br_if $L23 end
   local.get $n i64.eqz br_if $L22 end
   local.get $n i64.eqz br_if $L21 end
   local.get $n i64.eqz br_if $L20 end
   local.get $n i64.eqz br_if $L19 end
   local.get $n i64.eqz br_if $L18 end
   local.get $n i64.eqz br_if $L17 end
   local.get $n i64.eqz br_if $L16 end
   local.get $n i64.eqz br_if $L15 end
   local.get $n i64.eqz br_if $L14 end
   local.get $n i64.eqz br_if $L13 end
   local.get $n i64.eqz br_if $L12 end
   local.get $n i64.eqz br_if $L11 end
   local.get $n i64.eqz br_if $L10 end
   local.get $n i64.eqz br_if $L9 end
   local.get $n i64.eqz br_if $L8 end
   local.get $n i64.eqz br_if $L7 end
   local.get $n i64.eqz br_if $L6 end
   local.get $n i64.eqz br_if $L5 end
   local.get $n i64.eqz br_if $L4 end
   local.get $n i64.eqz br_if $L3 end
   local.get $n i64.eqz br_if $L2 end
   local.get $n i64.eqz br_if $L1 end
   local.get $n i64.eqz br_if $L0 end
  i64.const 0
  local.get $l0 i64.add
  local.get $l1 i64.add
  local.get $l2 i64.add
  local.get $l3 i64.add
  local.get $l4 i64.add
  local.get $l5 i64.add
  local.get $l6 i64.add
  local.get $l7 i64.add
  local.get $l8 i64.add
  local.get $l9 i64.add
  local.get $l10 i64.add
  local.get $l11 i64.add
  local.get $l12 i64.add
  local.get $l13 i64.add
  local.get $l14 i64.add
  local.get $l15 i64.add
  local.get $l16 i64.add
  local.get $l17 i64.add
  local.get $l18 i64.add
  local.get $l19 i64.add
  local.get $l20 i64.add
  local.get $l21 i64.add
  local.get $l22 i64.add
  local.get $l23 i64.add
  local.get $l24 i64.add
  local.get $l25 i64.add
  local.get $l26 i64.add
  local.get $l27 i64.add
  local.get $l28 i64.add
  local.get $l29 i64.add
  local.get $l30 i64.add
  local.get $l31 i64.add
  local.get $l32 i64.add
  local.get $l33 i64.add
  local.get $l34 i64.add
  local.get $l35 i64.add
  local.get $l36 i64.add
  local.get $l37 i64.add
  local.get $l38 i64.add
  local.get $l39 i64.add
  local.get $l40 i64.add
  local.get $l41 i64.add
  local.get $l42 i64.add
  local.get $l43 i64.add
  local.get $l44 i64.add
  local.get $l45 i64.add
  local.get $l46 i64.add
  local.get $l47 i64.add
  local.get $l48 i64.add
  local.get $l49 i64.add
  local.get $l50 i64.add
  local.get $l51 i64.add
  local.get $l52 i64.add
  local.get $l53 i64.add
  local.get $l54 i64.add
  local.get $l55 i64.add
  local.get $l56 i64.add
  local.get $l57 i64.add
  local.get $l58 i64.add
  local.get $l59 i64.add
  local.get $l60 i64.add
  local.get $l61 i64.add
  local.get $l62 i64.add
  local.get $l63 i64.add
  local.get $l64 i64.add
  local.get $l65 i64.add
  local.get $l66 i64.add
  local.get $l67 i64.add
  local.get $l68 i64.add
  local.get $l69 i64.add
  local.get $l70 i64.add
  local.get $l71 i64.add
  local.get $l72 i64.add
  local.get $l73 i64.add
  local.get $l74 i64.add
  local.get $l75 i64.add
  local.get $l76 i64.add
  local.get $l77 i64.add
  local.get $l78 i64.add
  local.get $l79 i64.add
  local.get $l80 i64.add
  local.get $l81 i64.add
  local.get $l82 i64.add
  local.get $l83 i64.add
  local.get $l84 i64.add
  local.get $l85 i64.add
  local.get $l86 i64.add
  local.get $l87 i64.add
  local.get $l88 i64.add
  local.get $l89 i64.add
  local.get $l90 i64.add
  local.get $l91 i64.add
  local.get $l92 i64.add
  local.get $l93 i64.add
  local.get $l94 i64.add
  local.get $l95 i64.add
  local.get $l96 i64.add
  local.get $l97 i64.add
  local.get $l98 i64.add
  local.get $l99 i64.add
 )
)
