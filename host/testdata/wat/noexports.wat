;; A reactor that exports a memory and _initialize but none of the storage
;; ABI: Load must name the missing exports.
(module
  (memory (export "memory") 1)
  (func (export "_initialize")))
