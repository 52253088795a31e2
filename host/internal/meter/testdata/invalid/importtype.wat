;; Invalid: imports a function of type 1 in a module with one type;
;; metered, the type of the meter's check.
(module
  (type (func))
  (import "wasi_snapshot_preview1" "sched_yield" (func (type 1))))
