;; Invalid: exports global 0 of a module without globals.
(module (export "g" (global 0)))
