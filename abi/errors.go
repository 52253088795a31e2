package abi

import (
	"context"
	"errors"
	"fmt"
)

// Code is the numeric error code that crosses every boundary (native call,
// wasm ABI, CLI exit). Its values are part of the ABI: never renumber them.
type Code uint32

// Error codes. CodeOK is only used on the wasm boundary as a status.
const (
	CodeOK                Code = 0
	CodeNotFound          Code = 1
	CodeInvalidArgument   Code = 2
	CodeConflict          Code = 3
	CodeUnavailable       Code = 4
	CodeUnsupported       Code = 5
	CodeResourceExhausted Code = 6
	CodeCanceled          Code = 7
	CodeDeadlineExceeded  Code = 8
	CodeInternal          Code = 9
)

var codeNames = [...]string{
	CodeOK:                "ok",
	CodeNotFound:          "not found",
	CodeInvalidArgument:   "invalid argument",
	CodeConflict:          "conflict",
	CodeUnavailable:       "unavailable",
	CodeUnsupported:       "unsupported",
	CodeResourceExhausted: "resource exhausted",
	CodeCanceled:          "canceled",
	CodeDeadlineExceeded:  "deadline exceeded",
	CodeInternal:          "internal",
}

// Known reports whether c is a code of this ABI version (CodeOK to
// CodeInternal). A later minor version may add codes; a host treats a code
// it does not know as a malformed answer.
func (c Code) Known() bool { return c <= CodeInternal }

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint32(c))
}

// Error is the one error type of the storage contract: a code, a message and,
// for native backends, the native cause (kept for errors.As).
//
// errors.Is(err, abi.ErrNotFound) matches any *Error with the same code,
// whatever its message, so sentinels work across the wasm boundary where
// only the code and the message survive.
type Error struct {
	Code    Code
	Message string
	Err     error // native cause, may be nil
}

func (e *Error) Error() string {
	switch {
	case e.Message == "" && e.Err == nil:
		return e.Code.String()
	case e.Message == "":
		return e.Err.Error()
	case e.Err == nil:
		return e.Message
	default:
		return e.Message + ": " + e.Err.Error()
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is a sentinel (or any *Error) of the same code, or
// the context error that corresponds to the code, so that
// errors.Is(err, context.Canceled) also holds for CodeCanceled.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		return t.Code == e.Code
	}
	switch target {
	case context.Canceled:
		return e.Code == CodeCanceled
	case context.DeadlineExceeded:
		return e.Code == CodeDeadlineExceeded
	}
	return false
}

// Sentinels for errors.Is. Compare with errors.Is, never by identity.
var (
	ErrNotFound          = &Error{Code: CodeNotFound}
	ErrInvalidArgument   = &Error{Code: CodeInvalidArgument}
	ErrConflict          = &Error{Code: CodeConflict}
	ErrUnavailable       = &Error{Code: CodeUnavailable}
	ErrUnsupported       = &Error{Code: CodeUnsupported}
	ErrResourceExhausted = &Error{Code: CodeResourceExhausted}
	ErrCanceled          = &Error{Code: CodeCanceled}
	ErrDeadlineExceeded  = &Error{Code: CodeDeadlineExceeded}
	ErrInternal          = &Error{Code: CodeInternal}
)

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message that keeps cause
// for errors.As. A nil cause gives a plain *Error.
func Wrap(code Code, cause error, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// CodeOf returns the code of err: its *Error code if it has one, the code
// matching a context error, CodeOK for nil, and CodeInternal otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	}
	return CodeInternal
}

// ContextError converts ctx.Err() to an *Error (nil when ctx is live).
// Backends call it at the top of every operation so a cancelled context
// returns promptly with the right code.
func ContextError(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	return FromContext(err)
}

// FromContext maps context.Canceled and context.DeadlineExceeded (possibly
// wrapped) to CodeCanceled and CodeDeadlineExceeded, keeping the cause.
// Other errors are returned unchanged.
func FromContext(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeDeadlineExceeded, Message: "deadline exceeded", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCanceled, Message: "canceled", Err: err}
	}
	return err
}
