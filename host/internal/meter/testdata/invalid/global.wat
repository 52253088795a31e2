;; Invalid: writes global 1 of a module without globals. Metered, index 1
;; would be the meter's stack global (index 0 its budget).
(module
  (func $rec (export "rec") (param i32) (result i32)
    (global.set 1 (i32.const 0))
    (call $rec (local.get 0))))
