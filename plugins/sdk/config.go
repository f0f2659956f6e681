package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

func checkConfigTarget(target any) error {
	v := reflect.ValueOf(target)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("WithConfig needs a non-nil pointer, got %T", target)
	}
	return nil
}

// configure decodes raw (the node's config as JSON) into target and
// validates it. Every problem comes back as a FieldError.
func configure(target any, raw []byte) []FieldError {
	raw = bytes.TrimSpace(raw)
	absent := len(raw) == 0 || string(raw) == "null"
	if target == nil {
		if absent || string(raw) == "{}" {
			return nil
		}
		return []FieldError{{Message: "this plugin takes no config"}}
	}
	// Configure may run more than once (tests, sdktest); each run starts
	// from the zero value so no field survives from an earlier config.
	reflect.ValueOf(target).Elem().SetZero()
	if !absent {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			return []FieldError{jsonFieldError(err)}
		}
	}
	if v, ok := target.(interface{ Validate() error }); ok {
		if err := protect(v.Validate); err != nil {
			return fieldErrors(err)
		}
	}
	return nil
}

func jsonFieldError(err error) FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return FieldError{Field: te.Field, Message: fmt.Sprintf("want %s, got %s", jsonType(te.Type), te.Value)}
	}
	// encoding/json reports unknown fields only as text.
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		if name, qerr := strconv.Unquote(strings.TrimPrefix(msg, unknown)); qerr == nil {
			return FieldError{Field: name, Message: "unknown field"}
		}
	}
	return FieldError{Message: "invalid config: " + strings.TrimPrefix(err.Error(), "json: ")}
}

func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// fieldErrors flattens a Validate error (possibly errors.Join of several)
// into FieldErrors; an error that names no field is about the whole config.
func fieldErrors(err error) []FieldError {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []FieldError
		for _, e := range j.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []FieldError{*fe}
	}
	return []FieldError{{Message: err.Error()}}
}
