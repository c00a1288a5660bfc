package userns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ParseOCIConfig reads an OCI runtime config.json and returns the maps of
// linux.uidMappings and linux.gidMappings (containerID, hostID, size),
// each validated as by [NewMap]. A config without a linux section or
// without mappings gives zero Maps and a nil error: the container then
// shares the host's user namespace.
func ParseOCIConfig(r io.Reader) (uid, gid Map, err error) {
	var spec specs.Spec
	if err := json.NewDecoder(r).Decode(&spec); err != nil {
		return Map{}, Map{}, fmt.Errorf("decode OCI config: %w", jsonError(err))
	}
	if spec.Linux == nil {
		return Map{}, Map{}, nil
	}
	if uid, err = FromOCI(spec.Linux.UIDMappings); err != nil {
		return Map{}, Map{}, fmt.Errorf("OCI config linux.uidMappings: %w", err)
	}
	if gid, err = FromOCI(spec.Linux.GIDMappings); err != nil {
		return Map{}, Map{}, fmt.Errorf("OCI config linux.gidMappings: %w", err)
	}
	return uid, gid, nil
}

// FromOCI converts OCI id mappings to a Map, validated as by [NewMap]. No
// mapping gives the zero Map and a nil error.
func FromOCI(ms []specs.LinuxIDMapping) (Map, error) {
	if len(ms) == 0 {
		return Map{}, nil
	}
	ext := make([]Extent, len(ms))
	for i, m := range ms {
		ext[i] = Extent{NsID: m.ContainerID, HostID: m.HostID, Count: m.Size}
	}
	return NewMap(ext)
}

// OCI converts m to OCI id mappings, in m's order.
func (m Map) OCI() []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, len(m.extents))
	for i, e := range m.extents {
		out[i] = specs.LinuxIDMapping{ContainerID: e.NsID, HostID: e.HostID, Size: e.Count}
	}
	return out
}

// jsonError returns err, an error of encoding/json, with a message in the
// terms of the JSON document rather than of the Go types it is decoded
// into ("field linux.uidMappings: a string where an array belongs", not
// "cannot unmarshal string into Go struct field ... of type
// []specs.LinuxIDMapping"); errors.As still finds the original.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the document"
		} else {
			field = "field " + field
		}
		return &wordedError{msg: fmt.Sprintf("%s: a JSON %s where %s belongs", field, te.Value, jsonKind(te.Type)), err: err}
	case errors.As(err, &se):
		return &wordedError{msg: fmt.Sprintf("not valid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: ")), err: err}
	}
	return err
}

// jsonKind names the JSON value that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	default:
		return "another value"
	}
}

// wordedError is err with a message of its own.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }
