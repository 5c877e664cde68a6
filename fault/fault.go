// Package fault is the one domain error of UltraMCP: an error with a kind that
// says whether retrying can help. Adapters classify what they see (HTTP
// statuses, driver errors) into a kind once; the engines and the API map the
// kind to Restate terminal errors and HTTP statuses in one place each.
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Kind says what went wrong in terms a caller can act on.
type Kind int

const (
	// Internal is a bug or an unexpected condition; retrying is allowed.
	Internal Kind = iota
	// Invalid is bad input: retrying the same request cannot succeed.
	Invalid
	// NotFound is a missing resource (repository, workflow, model).
	NotFound
	// Unavailable is a transient fault: rate limit, 5xx, timeout, network.
	Unavailable
	// Permanent is a fault of the remote side that retrying cannot fix
	// (bad API key, forbidden, request rejected as malformed).
	Permanent
	// Cancelled means the work was cancelled by a user.
	Cancelled
	// Conflict is a request the resource's state refuses now: a decision
	// for a workflow not waiting for one, an id another workflow holds.
	Conflict
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Unavailable:
		return "unavailable"
	case Permanent:
		return "permanent"
	case Cancelled:
		return "cancelled"
	case Conflict:
		return "conflict"
	default:
		return "internal"
	}
}

// Error is an error with a kind and, for invalid input, the field at fault.
type Error struct {
	Kind  Kind
	Field string // input field at fault, for Invalid
	Msg   string
	Err   error
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		if msg == "" {
			return e.Err.Error()
		}
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Invalidf reports bad input in field.
func Invalidf(field, format string, args ...any) error {
	return &Error{Kind: Invalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// New returns an error of kind with a message.
func New(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap gives err a kind, keeping it in the chain.
func Wrap(kind Kind, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// FieldOf returns the input field named by err, if any.
func FieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// IsRetryable reports whether trying again may succeed.
func IsRetryable(err error) bool {
	switch KindOf(err) {
	case Unavailable, Internal:
		return true
	}
	return false
}

// HTTPStatus maps a kind to the HTTP status used by the API and by Restate
// terminal errors.
func HTTPStatus(err error) int {
	switch KindOf(err) {
	case Invalid:
		return 400
	case NotFound:
		return 404
	case Permanent:
		return 424 // failed dependency: the remote refused for good
	case Unavailable:
		return 503
	case Cancelled, Conflict:
		return 409
	default:
		return 500
	}
}

// Message is err's message without the field it names.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Field != "" {
		return strings.TrimPrefix(e.Error(), e.Field+": ")
	}
	return err.Error()
}
