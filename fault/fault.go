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

// statusOf is the one map of a kind to its HTTP status, used by the API's
// answers and by Restate terminal errors (whose code says the kind).
var statusOf = map[Kind]int{
	Invalid:     400,
	NotFound:    404,
	Cancelled:   409,
	Conflict:    409,
	Permanent:   422, // the request was fine; what it asked for failed for good
	Unavailable: 503,
}

// HTTPStatus is the HTTP status of err's kind; 500 for Internal.
func HTTPStatus(err error) int {
	if code, ok := statusOf[KindOf(err)]; ok {
		return code
	}
	return 500
}

// KindOfStatus is the kind an HTTP status stands for, HTTPStatus read
// back: 409 is Cancelled (Restate's own code for it), and any code not in
// the map is Permanent, since a status only comes back final.
func KindOfStatus(code int) Kind {
	for _, k := range []Kind{Invalid, NotFound, Cancelled, Permanent} {
		if statusOf[k] == code {
			return k
		}
	}
	return Permanent
}

// Message is err's message without the field it names.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Field != "" {
		return strings.TrimPrefix(e.Error(), e.Field+": ")
	}
	return err.Error()
}
