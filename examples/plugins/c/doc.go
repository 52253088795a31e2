// Package c tests the storage plugins written in C that live in its
// subdirectories; it has no code besides the tests.
//
// memkv (memkv/memkv.c, see memkv/README.md) is an in-memory plugin
// written against the wasm storage ABI (abi/WASM.md) alone, without the Go
// SDK: the proof that the ABI is language-neutral. `make wasm` builds it
// into bin/plugins/memkv.wasm when clang can target wasm32-wasi.
//
// The tests build memkv.c with clang and the flags of memkv/flags.rsp (the
// ones `make wasm` uses) plus -Werror into a temporary directory, and skip,
// naming the packages to install, when clang cannot build for
// wasm32-wasi. They run the conformance suite through the host exactly as
// `topgun plugin test` does (the core subset, then every case); drive the
// raw exports with requests the Go host never sends (other integer widths,
// appended fields, nil lists, str for bin, malformed and oversized
// messages, a response that moves the buffer); and fuzz topgun_call
// (FuzzCall): no input may trap or break the response rules of WASM.md.
package c
