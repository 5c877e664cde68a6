package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ultramcp/durable/fault"
)

// DecodeStrict decodes a request body into v, refusing unknown fields, and
// names the field at fault in every error.
func DecodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fault.Invalidf("body", "empty; want a JSON object")
	}
	if !utf8.Valid(body) {
		// Checked on the bytes: decoding would replace what is invalid
		// with U+FFFD, and no later check could tell.
		return fault.Invalidf("body", "must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return fault.Invalidf(typeErr.Field, "%s", DescribeJSONError(err))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fault.Invalidf(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
		}
		return fault.Invalidf("body", "invalid JSON: %v", err)
	}
	return nil
}

// DescribeJSONError says in JSON's words what a decoding error found:
// "must be a number, got string".
func DescribeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("must be %s, got %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "float64":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	}
	return goKind
}

// HasControl reports whether s holds a control or format character (NUL,
// ESC, a bidirectional override…) other than those allowed (say "\n\t"
// for prose): such a character in a name reaches HTTP headers, terminals
// and reports.
func HasControl(s, allowed string) bool {
	for _, r := range s {
		if (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) && !strings.ContainsRune(allowed, r) {
			return true
		}
	}
	return false
}
