;; A get of map "evil" recurses 1,000,000 deep through a function with a
;; loop whose header merges 32 locals and a br_table of 1,000 entries back
;; to it: wazero copies every merged value through a temporary of its own
;; on each branch to a loop header, and spills each into its own slot, so
;; one frame of a 2 KB module takes 150 KB. The meter's frame estimate
;; must count those copies, or the recursion reaches wazero's own ceiling
;; (150 MiB of heap) before the stack bound.
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
    (call $rec (i64.const 1000000))
    drop
    ;; an empty array (not reached)
    (i32.store8 (i32.const 1024) (i32.const 0x90))
    (i64.const 1))
  (func $rec (param $n i64) (result i64)
    (local $x0 i64)
    (local $x1 i64)
    (local $x2 i64)
    (local $x3 i64)
    (local $x4 i64)
    (local $x5 i64)
    (local $x6 i64)
    (local $x7 i64)
    (local $x8 i64)
    (local $x9 i64)
    (local $x10 i64)
    (local $x11 i64)
    (local $x12 i64)
    (local $x13 i64)
    (local $x14 i64)
    (local $x15 i64)
    (local $x16 i64)
    (local $x17 i64)
    (local $x18 i64)
    (local $x19 i64)
    (local $x20 i64)
    (local $x21 i64)
    (local $x22 i64)
    (local $x23 i64)
    (local $x24 i64)
    (local $x25 i64)
    (local $x26 i64)
    (local $x27 i64)
    (local $x28 i64)
    (local $x29 i64)
    (local $x30 i64)
    (local $x31 i64)
    (local $k i32)
    local.get $n i64.eqz if i64.const 0 return end
    local.get $n i64.const 1 i64.sub call $rec drop
    block $exit loop $L
      local.get $k i32.const 1 i32.add local.tee $k i32.const 3 i32.gt_u br_if $exit
      local.get $k i32.const 1 i32.eq if
        local.get $x0 local.get $n i64.add local.set $x0
        local.get $x1 local.get $n i64.add local.set $x1
        local.get $x2 local.get $n i64.add local.set $x2
        local.get $x3 local.get $n i64.add local.set $x3
        local.get $x4 local.get $n i64.add local.set $x4
        local.get $x5 local.get $n i64.add local.set $x5
        local.get $x6 local.get $n i64.add local.set $x6
        local.get $x7 local.get $n i64.add local.set $x7
        local.get $x8 local.get $n i64.add local.set $x8
        local.get $x9 local.get $n i64.add local.set $x9
        local.get $x10 local.get $n i64.add local.set $x10
        local.get $x11 local.get $n i64.add local.set $x11
        local.get $x12 local.get $n i64.add local.set $x12
        local.get $x13 local.get $n i64.add local.set $x13
        local.get $x14 local.get $n i64.add local.set $x14
        local.get $x15 local.get $n i64.add local.set $x15
        local.get $x16 local.get $n i64.add local.set $x16
        local.get $x17 local.get $n i64.add local.set $x17
        local.get $x18 local.get $n i64.add local.set $x18
        local.get $x19 local.get $n i64.add local.set $x19
        local.get $x20 local.get $n i64.add local.set $x20
        local.get $x21 local.get $n i64.add local.set $x21
        local.get $x22 local.get $n i64.add local.set $x22
        local.get $x23 local.get $n i64.add local.set $x23
        local.get $x24 local.get $n i64.add local.set $x24
        local.get $x25 local.get $n i64.add local.set $x25
        local.get $x26 local.get $n i64.add local.set $x26
        local.get $x27 local.get $n i64.add local.set $x27
        local.get $x28 local.get $n i64.add local.set $x28
        local.get $x29 local.get $n i64.add local.set $x29
        local.get $x30 local.get $n i64.add local.set $x30
        local.get $x31 local.get $n i64.add local.set $x31
        br $L end
      local.get $k br_table $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $exit
    end end
    i64.const 0
    local.get $x0 i64.add
    local.get $x1 i64.add
    local.get $x2 i64.add
    local.get $x3 i64.add
    local.get $x4 i64.add
    local.get $x5 i64.add
    local.get $x6 i64.add
    local.get $x7 i64.add
    local.get $x8 i64.add
    local.get $x9 i64.add
    local.get $x10 i64.add
    local.get $x11 i64.add
    local.get $x12 i64.add
    local.get $x13 i64.add
    local.get $x14 i64.add
    local.get $x15 i64.add
    local.get $x16 i64.add
    local.get $x17 i64.add
    local.get $x18 i64.add
    local.get $x19 i64.add
    local.get $x20 i64.add
    local.get $x21 i64.add
    local.get $x22 i64.add
    local.get $x23 i64.add
    local.get $x24 i64.add
    local.get $x25 i64.add
    local.get $x26 i64.add
    local.get $x27 i64.add
    local.get $x28 i64.add
    local.get $x29 i64.add
    local.get $x30 i64.add
    local.get $x31 i64.add
  )
)
