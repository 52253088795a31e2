;; Invalid: reads local 1 of a function with one; metered, the scratch.
(module
  (func (export "f") (param i32) (result i32)
    (local.get 1)))
