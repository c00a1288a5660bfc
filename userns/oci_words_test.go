package userns

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestParseOCIConfigWords: a malformed config is described in the terms
// of the JSON document, not of the Go types it decodes into, and
// errors.As still finds encoding/json's error.
func TestParseOCIConfigWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`{"linux":{"uidMappings":"x"}}`, "decode OCI config: field linux.uidMappings: a JSON string where an array belongs"},
		{`{"linux":{"uidMappings":[{"containerID":"a"}]}}`, "decode OCI config: field linux.uidMappings.containerID: a JSON string where a number belongs"},
		{`{"linux":{"gidMappings":[{"size":true}]}}`, "decode OCI config: field linux.gidMappings.size: a JSON bool where a number belongs"},
		{`{"linux": x}`, "decode OCI config: not valid JSON at byte 11: invalid character 'x' looking for beginning of value"},
	} {
		_, _, err := ParseOCIConfig(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseOCIConfig(%s) = %v, want %q", tc.in, err, tc.want)
			continue
		}
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		if !errors.As(err, &te) && !errors.As(err, &se) {
			t.Errorf("ParseOCIConfig(%s): errors.As finds no encoding/json error in %v", tc.in, err)
		}
	}
}
