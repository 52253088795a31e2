;; A get of map "evil" answers a lie chosen by the first byte of its first
;; key (the request is 0x93 0xa4 "evil" 0xc2 0x91 0xa1 <byte> for one
;; one-byte key):
;;   t  truncated: a record cut short
;;   b  a length over any response limit
;;   j  not msgpack (0xc1)
;;   c  status code 99, which is no error code
;;   m  claims 1000 records and sends one
;;   p  a length inside the limit but past the end of its memory
;;   r  reserved status bits set
;;   n  one record whose sixth, unknown field opens 8 MiB of nested
;;      arrays and never closes them
;;   s  replays what a test staged: the i64 result at 16 and the body at
;;      0x20000
;; and any op replays what a test staged when the i32 at 24 is not zero
;; (once; the fuzz target uses it).
;;
;; It answers describe and open as plugin "liar" and serves every op
;; with an empty, well-formed answer, except a get of map "evil", which
;; misbehaves as described above (the adversaries of host/fault_test.go).
(module
  (import "topgun_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 4)
  ;; Description [name, 1, 0, 4] at 512.
  (data (i32.const 512) "\94\a4\6c\69\61\72\01\00\04")
  (func (export "_initialize"))
  (func (export "topgun_abi_version") (result i32) (i32.const 0x10000))
  (func (export "topgun_buffer") (param $min i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $min) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 1024))))
  (func (export "topgun_call") (param $op i32) (param $len i32) (result i64)
    ;; A test staged a result for the next call, whatever its op.
    (if (i32.ne (i32.load (i32.const 24)) (i32.const 0))
      (then
        (i32.store (i32.const 24) (i32.const 0))
        (return (call $staged))))
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
    (local $k i32)
    (local.set $k (i32.load8_u (i32.const 1033)))
    (if (i32.eq (local.get $k) (i32.const 0x74)) ;; t
      (then
        (i32.store (i32.const 1024) (i32.const 0x6ba19591)) ;; 91 95 a1 'k'
        (return (i64.const 4))))
    (if (i32.eq (local.get $k) (i32.const 0x62)) ;; b
      (then (return (i64.const 0x7fffffff))))
    (if (i32.eq (local.get $k) (i32.const 0x6a)) ;; j
      (then
        (i32.store8 (i32.const 1024) (i32.const 0xc1))
        (return (i64.const 1))))
    (if (i32.eq (local.get $k) (i32.const 0x63)) ;; c
      (then
        (i32.store8 (i32.const 1024) (i32.const 0x78))
        (return (i64.const 0x0000006300000001))))
    (if (i32.eq (local.get $k) (i32.const 0x6d)) ;; m
      (then
        ;; dc 03 e8, then one record [ "k", bin "v", 0, 0, 0 ]
        (i32.store (i32.const 1024) (i32.const 0x95e803dc))
        (i32.store (i32.const 1028) (i32.const 0x01c46ba1))
        (i32.store (i32.const 1032) (i32.const 0x00000076))
        (i32.store8 (i32.const 1036) (i32.const 0))
        (return (i64.const 13))))
    (if (i32.eq (local.get $k) (i32.const 0x70)) ;; p
      (then (return (i64.const 0x01000000))))
    (if (i32.eq (local.get $k) (i32.const 0x72)) ;; r
      (then
        (i32.store8 (i32.const 1024) (i32.const 0x90))
        (return (i64.const 0x0004000000000001))))
    (if (i32.eq (local.get $k) (i32.const 0x6e)) ;; n
      (then
        ;; 91 96 a1 'k' c4 01 'v' 00 00 00, then 8 MiB of 91
        (drop (memory.grow (i32.const 128)))
        (i32.store (i32.const 1024) (i32.const 0x6ba19691))
        (i32.store (i32.const 1028) (i32.const 0x007601c4))
        (i32.store16 (i32.const 1032) (i32.const 0))
        (memory.fill (i32.const 1034) (i32.const 0x91) (i32.const 0x800000))
        (return (i64.const 0x80000a))))
    (if (i32.eq (local.get $k) (i32.const 0x73)) ;; s
      (then (return (call $staged))))
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
  (func $staged (result i64)
    (memory.copy (i32.const 1024) (i32.const 0x20000)
      (select (i32.wrap_i64 (i64.load (i32.const 16))) (i32.const 0x10000)
        (i32.le_u (i32.wrap_i64 (i64.load (i32.const 16))) (i32.const 0x10000))))
    (i64.load (i32.const 16)))
)
