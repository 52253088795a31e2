;; Invalid: branches one label past the function's; metered, the
;; function's own label, past the wrapping block.
(module
  (func (export "f") (result i32)
    (i32.const 1)
    (br 1)))
