;; recursebrt with 200 locals and a br_table of 10,000 entries: one frame
;; of its recursive function is estimated at 32 MB, over the sandboxed
;; call stack limit, so it could never run; the host refuses the module
;; rather than compile it (wazero takes seconds and gigabytes on such
;; bodies).
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
    (local $x32 i64)
    (local $x33 i64)
    (local $x34 i64)
    (local $x35 i64)
    (local $x36 i64)
    (local $x37 i64)
    (local $x38 i64)
    (local $x39 i64)
    (local $x40 i64)
    (local $x41 i64)
    (local $x42 i64)
    (local $x43 i64)
    (local $x44 i64)
    (local $x45 i64)
    (local $x46 i64)
    (local $x47 i64)
    (local $x48 i64)
    (local $x49 i64)
    (local $x50 i64)
    (local $x51 i64)
    (local $x52 i64)
    (local $x53 i64)
    (local $x54 i64)
    (local $x55 i64)
    (local $x56 i64)
    (local $x57 i64)
    (local $x58 i64)
    (local $x59 i64)
    (local $x60 i64)
    (local $x61 i64)
    (local $x62 i64)
    (local $x63 i64)
    (local $x64 i64)
    (local $x65 i64)
    (local $x66 i64)
    (local $x67 i64)
    (local $x68 i64)
    (local $x69 i64)
    (local $x70 i64)
    (local $x71 i64)
    (local $x72 i64)
    (local $x73 i64)
    (local $x74 i64)
    (local $x75 i64)
    (local $x76 i64)
    (local $x77 i64)
    (local $x78 i64)
    (local $x79 i64)
    (local $x80 i64)
    (local $x81 i64)
    (local $x82 i64)
    (local $x83 i64)
    (local $x84 i64)
    (local $x85 i64)
    (local $x86 i64)
    (local $x87 i64)
    (local $x88 i64)
    (local $x89 i64)
    (local $x90 i64)
    (local $x91 i64)
    (local $x92 i64)
    (local $x93 i64)
    (local $x94 i64)
    (local $x95 i64)
    (local $x96 i64)
    (local $x97 i64)
    (local $x98 i64)
    (local $x99 i64)
    (local $x100 i64)
    (local $x101 i64)
    (local $x102 i64)
    (local $x103 i64)
    (local $x104 i64)
    (local $x105 i64)
    (local $x106 i64)
    (local $x107 i64)
    (local $x108 i64)
    (local $x109 i64)
    (local $x110 i64)
    (local $x111 i64)
    (local $x112 i64)
    (local $x113 i64)
    (local $x114 i64)
    (local $x115 i64)
    (local $x116 i64)
    (local $x117 i64)
    (local $x118 i64)
    (local $x119 i64)
    (local $x120 i64)
    (local $x121 i64)
    (local $x122 i64)
    (local $x123 i64)
    (local $x124 i64)
    (local $x125 i64)
    (local $x126 i64)
    (local $x127 i64)
    (local $x128 i64)
    (local $x129 i64)
    (local $x130 i64)
    (local $x131 i64)
    (local $x132 i64)
    (local $x133 i64)
    (local $x134 i64)
    (local $x135 i64)
    (local $x136 i64)
    (local $x137 i64)
    (local $x138 i64)
    (local $x139 i64)
    (local $x140 i64)
    (local $x141 i64)
    (local $x142 i64)
    (local $x143 i64)
    (local $x144 i64)
    (local $x145 i64)
    (local $x146 i64)
    (local $x147 i64)
    (local $x148 i64)
    (local $x149 i64)
    (local $x150 i64)
    (local $x151 i64)
    (local $x152 i64)
    (local $x153 i64)
    (local $x154 i64)
    (local $x155 i64)
    (local $x156 i64)
    (local $x157 i64)
    (local $x158 i64)
    (local $x159 i64)
    (local $x160 i64)
    (local $x161 i64)
    (local $x162 i64)
    (local $x163 i64)
    (local $x164 i64)
    (local $x165 i64)
    (local $x166 i64)
    (local $x167 i64)
    (local $x168 i64)
    (local $x169 i64)
    (local $x170 i64)
    (local $x171 i64)
    (local $x172 i64)
    (local $x173 i64)
    (local $x174 i64)
    (local $x175 i64)
    (local $x176 i64)
    (local $x177 i64)
    (local $x178 i64)
    (local $x179 i64)
    (local $x180 i64)
    (local $x181 i64)
    (local $x182 i64)
    (local $x183 i64)
    (local $x184 i64)
    (local $x185 i64)
    (local $x186 i64)
    (local $x187 i64)
    (local $x188 i64)
    (local $x189 i64)
    (local $x190 i64)
    (local $x191 i64)
    (local $x192 i64)
    (local $x193 i64)
    (local $x194 i64)
    (local $x195 i64)
    (local $x196 i64)
    (local $x197 i64)
    (local $x198 i64)
    (local $x199 i64)
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
        local.get $x32 local.get $n i64.add local.set $x32
        local.get $x33 local.get $n i64.add local.set $x33
        local.get $x34 local.get $n i64.add local.set $x34
        local.get $x35 local.get $n i64.add local.set $x35
        local.get $x36 local.get $n i64.add local.set $x36
        local.get $x37 local.get $n i64.add local.set $x37
        local.get $x38 local.get $n i64.add local.set $x38
        local.get $x39 local.get $n i64.add local.set $x39
        local.get $x40 local.get $n i64.add local.set $x40
        local.get $x41 local.get $n i64.add local.set $x41
        local.get $x42 local.get $n i64.add local.set $x42
        local.get $x43 local.get $n i64.add local.set $x43
        local.get $x44 local.get $n i64.add local.set $x44
        local.get $x45 local.get $n i64.add local.set $x45
        local.get $x46 local.get $n i64.add local.set $x46
        local.get $x47 local.get $n i64.add local.set $x47
        local.get $x48 local.get $n i64.add local.set $x48
        local.get $x49 local.get $n i64.add local.set $x49
        local.get $x50 local.get $n i64.add local.set $x50
        local.get $x51 local.get $n i64.add local.set $x51
        local.get $x52 local.get $n i64.add local.set $x52
        local.get $x53 local.get $n i64.add local.set $x53
        local.get $x54 local.get $n i64.add local.set $x54
        local.get $x55 local.get $n i64.add local.set $x55
        local.get $x56 local.get $n i64.add local.set $x56
        local.get $x57 local.get $n i64.add local.set $x57
        local.get $x58 local.get $n i64.add local.set $x58
        local.get $x59 local.get $n i64.add local.set $x59
        local.get $x60 local.get $n i64.add local.set $x60
        local.get $x61 local.get $n i64.add local.set $x61
        local.get $x62 local.get $n i64.add local.set $x62
        local.get $x63 local.get $n i64.add local.set $x63
        local.get $x64 local.get $n i64.add local.set $x64
        local.get $x65 local.get $n i64.add local.set $x65
        local.get $x66 local.get $n i64.add local.set $x66
        local.get $x67 local.get $n i64.add local.set $x67
        local.get $x68 local.get $n i64.add local.set $x68
        local.get $x69 local.get $n i64.add local.set $x69
        local.get $x70 local.get $n i64.add local.set $x70
        local.get $x71 local.get $n i64.add local.set $x71
        local.get $x72 local.get $n i64.add local.set $x72
        local.get $x73 local.get $n i64.add local.set $x73
        local.get $x74 local.get $n i64.add local.set $x74
        local.get $x75 local.get $n i64.add local.set $x75
        local.get $x76 local.get $n i64.add local.set $x76
        local.get $x77 local.get $n i64.add local.set $x77
        local.get $x78 local.get $n i64.add local.set $x78
        local.get $x79 local.get $n i64.add local.set $x79
        local.get $x80 local.get $n i64.add local.set $x80
        local.get $x81 local.get $n i64.add local.set $x81
        local.get $x82 local.get $n i64.add local.set $x82
        local.get $x83 local.get $n i64.add local.set $x83
        local.get $x84 local.get $n i64.add local.set $x84
        local.get $x85 local.get $n i64.add local.set $x85
        local.get $x86 local.get $n i64.add local.set $x86
        local.get $x87 local.get $n i64.add local.set $x87
        local.get $x88 local.get $n i64.add local.set $x88
        local.get $x89 local.get $n i64.add local.set $x89
        local.get $x90 local.get $n i64.add local.set $x90
        local.get $x91 local.get $n i64.add local.set $x91
        local.get $x92 local.get $n i64.add local.set $x92
        local.get $x93 local.get $n i64.add local.set $x93
        local.get $x94 local.get $n i64.add local.set $x94
        local.get $x95 local.get $n i64.add local.set $x95
        local.get $x96 local.get $n i64.add local.set $x96
        local.get $x97 local.get $n i64.add local.set $x97
        local.get $x98 local.get $n i64.add local.set $x98
        local.get $x99 local.get $n i64.add local.set $x99
        local.get $x100 local.get $n i64.add local.set $x100
        local.get $x101 local.get $n i64.add local.set $x101
        local.get $x102 local.get $n i64.add local.set $x102
        local.get $x103 local.get $n i64.add local.set $x103
        local.get $x104 local.get $n i64.add local.set $x104
        local.get $x105 local.get $n i64.add local.set $x105
        local.get $x106 local.get $n i64.add local.set $x106
        local.get $x107 local.get $n i64.add local.set $x107
        local.get $x108 local.get $n i64.add local.set $x108
        local.get $x109 local.get $n i64.add local.set $x109
        local.get $x110 local.get $n i64.add local.set $x110
        local.get $x111 local.get $n i64.add local.set $x111
        local.get $x112 local.get $n i64.add local.set $x112
        local.get $x113 local.get $n i64.add local.set $x113
        local.get $x114 local.get $n i64.add local.set $x114
        local.get $x115 local.get $n i64.add local.set $x115
        local.get $x116 local.get $n i64.add local.set $x116
        local.get $x117 local.get $n i64.add local.set $x117
        local.get $x118 local.get $n i64.add local.set $x118
        local.get $x119 local.get $n i64.add local.set $x119
        local.get $x120 local.get $n i64.add local.set $x120
        local.get $x121 local.get $n i64.add local.set $x121
        local.get $x122 local.get $n i64.add local.set $x122
        local.get $x123 local.get $n i64.add local.set $x123
        local.get $x124 local.get $n i64.add local.set $x124
        local.get $x125 local.get $n i64.add local.set $x125
        local.get $x126 local.get $n i64.add local.set $x126
        local.get $x127 local.get $n i64.add local.set $x127
        local.get $x128 local.get $n i64.add local.set $x128
        local.get $x129 local.get $n i64.add local.set $x129
        local.get $x130 local.get $n i64.add local.set $x130
        local.get $x131 local.get $n i64.add local.set $x131
        local.get $x132 local.get $n i64.add local.set $x132
        local.get $x133 local.get $n i64.add local.set $x133
        local.get $x134 local.get $n i64.add local.set $x134
        local.get $x135 local.get $n i64.add local.set $x135
        local.get $x136 local.get $n i64.add local.set $x136
        local.get $x137 local.get $n i64.add local.set $x137
        local.get $x138 local.get $n i64.add local.set $x138
        local.get $x139 local.get $n i64.add local.set $x139
        local.get $x140 local.get $n i64.add local.set $x140
        local.get $x141 local.get $n i64.add local.set $x141
        local.get $x142 local.get $n i64.add local.set $x142
        local.get $x143 local.get $n i64.add local.set $x143
        local.get $x144 local.get $n i64.add local.set $x144
        local.get $x145 local.get $n i64.add local.set $x145
        local.get $x146 local.get $n i64.add local.set $x146
        local.get $x147 local.get $n i64.add local.set $x147
        local.get $x148 local.get $n i64.add local.set $x148
        local.get $x149 local.get $n i64.add local.set $x149
        local.get $x150 local.get $n i64.add local.set $x150
        local.get $x151 local.get $n i64.add local.set $x151
        local.get $x152 local.get $n i64.add local.set $x152
        local.get $x153 local.get $n i64.add local.set $x153
        local.get $x154 local.get $n i64.add local.set $x154
        local.get $x155 local.get $n i64.add local.set $x155
        local.get $x156 local.get $n i64.add local.set $x156
        local.get $x157 local.get $n i64.add local.set $x157
        local.get $x158 local.get $n i64.add local.set $x158
        local.get $x159 local.get $n i64.add local.set $x159
        local.get $x160 local.get $n i64.add local.set $x160
        local.get $x161 local.get $n i64.add local.set $x161
        local.get $x162 local.get $n i64.add local.set $x162
        local.get $x163 local.get $n i64.add local.set $x163
        local.get $x164 local.get $n i64.add local.set $x164
        local.get $x165 local.get $n i64.add local.set $x165
        local.get $x166 local.get $n i64.add local.set $x166
        local.get $x167 local.get $n i64.add local.set $x167
        local.get $x168 local.get $n i64.add local.set $x168
        local.get $x169 local.get $n i64.add local.set $x169
        local.get $x170 local.get $n i64.add local.set $x170
        local.get $x171 local.get $n i64.add local.set $x171
        local.get $x172 local.get $n i64.add local.set $x172
        local.get $x173 local.get $n i64.add local.set $x173
        local.get $x174 local.get $n i64.add local.set $x174
        local.get $x175 local.get $n i64.add local.set $x175
        local.get $x176 local.get $n i64.add local.set $x176
        local.get $x177 local.get $n i64.add local.set $x177
        local.get $x178 local.get $n i64.add local.set $x178
        local.get $x179 local.get $n i64.add local.set $x179
        local.get $x180 local.get $n i64.add local.set $x180
        local.get $x181 local.get $n i64.add local.set $x181
        local.get $x182 local.get $n i64.add local.set $x182
        local.get $x183 local.get $n i64.add local.set $x183
        local.get $x184 local.get $n i64.add local.set $x184
        local.get $x185 local.get $n i64.add local.set $x185
        local.get $x186 local.get $n i64.add local.set $x186
        local.get $x187 local.get $n i64.add local.set $x187
        local.get $x188 local.get $n i64.add local.set $x188
        local.get $x189 local.get $n i64.add local.set $x189
        local.get $x190 local.get $n i64.add local.set $x190
        local.get $x191 local.get $n i64.add local.set $x191
        local.get $x192 local.get $n i64.add local.set $x192
        local.get $x193 local.get $n i64.add local.set $x193
        local.get $x194 local.get $n i64.add local.set $x194
        local.get $x195 local.get $n i64.add local.set $x195
        local.get $x196 local.get $n i64.add local.set $x196
        local.get $x197 local.get $n i64.add local.set $x197
        local.get $x198 local.get $n i64.add local.set $x198
        local.get $x199 local.get $n i64.add local.set $x199
        br $L end
      local.get $k br_table $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $L $exit
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
    local.get $x32 i64.add
    local.get $x33 i64.add
    local.get $x34 i64.add
    local.get $x35 i64.add
    local.get $x36 i64.add
    local.get $x37 i64.add
    local.get $x38 i64.add
    local.get $x39 i64.add
    local.get $x40 i64.add
    local.get $x41 i64.add
    local.get $x42 i64.add
    local.get $x43 i64.add
    local.get $x44 i64.add
    local.get $x45 i64.add
    local.get $x46 i64.add
    local.get $x47 i64.add
    local.get $x48 i64.add
    local.get $x49 i64.add
    local.get $x50 i64.add
    local.get $x51 i64.add
    local.get $x52 i64.add
    local.get $x53 i64.add
    local.get $x54 i64.add
    local.get $x55 i64.add
    local.get $x56 i64.add
    local.get $x57 i64.add
    local.get $x58 i64.add
    local.get $x59 i64.add
    local.get $x60 i64.add
    local.get $x61 i64.add
    local.get $x62 i64.add
    local.get $x63 i64.add
    local.get $x64 i64.add
    local.get $x65 i64.add
    local.get $x66 i64.add
    local.get $x67 i64.add
    local.get $x68 i64.add
    local.get $x69 i64.add
    local.get $x70 i64.add
    local.get $x71 i64.add
    local.get $x72 i64.add
    local.get $x73 i64.add
    local.get $x74 i64.add
    local.get $x75 i64.add
    local.get $x76 i64.add
    local.get $x77 i64.add
    local.get $x78 i64.add
    local.get $x79 i64.add
    local.get $x80 i64.add
    local.get $x81 i64.add
    local.get $x82 i64.add
    local.get $x83 i64.add
    local.get $x84 i64.add
    local.get $x85 i64.add
    local.get $x86 i64.add
    local.get $x87 i64.add
    local.get $x88 i64.add
    local.get $x89 i64.add
    local.get $x90 i64.add
    local.get $x91 i64.add
    local.get $x92 i64.add
    local.get $x93 i64.add
    local.get $x94 i64.add
    local.get $x95 i64.add
    local.get $x96 i64.add
    local.get $x97 i64.add
    local.get $x98 i64.add
    local.get $x99 i64.add
    local.get $x100 i64.add
    local.get $x101 i64.add
    local.get $x102 i64.add
    local.get $x103 i64.add
    local.get $x104 i64.add
    local.get $x105 i64.add
    local.get $x106 i64.add
    local.get $x107 i64.add
    local.get $x108 i64.add
    local.get $x109 i64.add
    local.get $x110 i64.add
    local.get $x111 i64.add
    local.get $x112 i64.add
    local.get $x113 i64.add
    local.get $x114 i64.add
    local.get $x115 i64.add
    local.get $x116 i64.add
    local.get $x117 i64.add
    local.get $x118 i64.add
    local.get $x119 i64.add
    local.get $x120 i64.add
    local.get $x121 i64.add
    local.get $x122 i64.add
    local.get $x123 i64.add
    local.get $x124 i64.add
    local.get $x125 i64.add
    local.get $x126 i64.add
    local.get $x127 i64.add
    local.get $x128 i64.add
    local.get $x129 i64.add
    local.get $x130 i64.add
    local.get $x131 i64.add
    local.get $x132 i64.add
    local.get $x133 i64.add
    local.get $x134 i64.add
    local.get $x135 i64.add
    local.get $x136 i64.add
    local.get $x137 i64.add
    local.get $x138 i64.add
    local.get $x139 i64.add
    local.get $x140 i64.add
    local.get $x141 i64.add
    local.get $x142 i64.add
    local.get $x143 i64.add
    local.get $x144 i64.add
    local.get $x145 i64.add
    local.get $x146 i64.add
    local.get $x147 i64.add
    local.get $x148 i64.add
    local.get $x149 i64.add
    local.get $x150 i64.add
    local.get $x151 i64.add
    local.get $x152 i64.add
    local.get $x153 i64.add
    local.get $x154 i64.add
    local.get $x155 i64.add
    local.get $x156 i64.add
    local.get $x157 i64.add
    local.get $x158 i64.add
    local.get $x159 i64.add
    local.get $x160 i64.add
    local.get $x161 i64.add
    local.get $x162 i64.add
    local.get $x163 i64.add
    local.get $x164 i64.add
    local.get $x165 i64.add
    local.get $x166 i64.add
    local.get $x167 i64.add
    local.get $x168 i64.add
    local.get $x169 i64.add
    local.get $x170 i64.add
    local.get $x171 i64.add
    local.get $x172 i64.add
    local.get $x173 i64.add
    local.get $x174 i64.add
    local.get $x175 i64.add
    local.get $x176 i64.add
    local.get $x177 i64.add
    local.get $x178 i64.add
    local.get $x179 i64.add
    local.get $x180 i64.add
    local.get $x181 i64.add
    local.get $x182 i64.add
    local.get $x183 i64.add
    local.get $x184 i64.add
    local.get $x185 i64.add
    local.get $x186 i64.add
    local.get $x187 i64.add
    local.get $x188 i64.add
    local.get $x189 i64.add
    local.get $x190 i64.add
    local.get $x191 i64.add
    local.get $x192 i64.add
    local.get $x193 i64.add
    local.get $x194 i64.add
    local.get $x195 i64.add
    local.get $x196 i64.add
    local.get $x197 i64.add
    local.get $x198 i64.add
    local.get $x199 i64.add
  )
)
