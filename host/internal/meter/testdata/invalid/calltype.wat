;; Invalid: call_indirect of type 1 in a module with one type.
(module
  (table 1 funcref)
  (func (export "f")
    (call_indirect (type 1) (i32.const 0))))
