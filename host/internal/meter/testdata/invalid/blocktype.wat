;; Invalid: a block of type 1 in a module with one type; metered, a type
;; the meter appends. wat2wasm writes (type 1) as an empty block type, so
;; blocktype.wasm is written by hand:
;;   00 61 73 6d 01 00 00 00   magic, version
;;   01 04 01 60 00 00         one type, () -> ()
;;   03 02 01 00               one function of type 0
;;   0a 07 01 05 00 02 01 0b 0b  its body: block (type 1) end end
(module
  (func
    (block (type 1))))
