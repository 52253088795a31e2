;; A command module (_start, no _initialize): Load must say to build a reactor.
(module
  (memory (export "memory") 1)
  (func (export "_start")))
