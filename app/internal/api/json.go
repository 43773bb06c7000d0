package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxBodyBytes bounds request bodies; the largest legitimate one, an order, is far smaller.
const maxBodyBytes = 64 << 10

// decodeJSON reads the request body into dst, which must be a pointer to a request struct.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil || mediaType != "application/json" {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "body must be application/json"}
		}
	}
	return decodeBody(http.MaxBytesReader(w, r.Body, maxBodyBytes), dst)
}

// decodeBody accepts exactly one JSON object with only the fields dst declares. Unknown fields
// are refused rather than ignored, so a client that sends {"role": "packer"} to change its role
// is told plainly that it cannot.
func decodeBody(body io.Reader, dst any) error {
	data, err := io.ReadAll(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
				Message: fmt.Sprintf("body must be at most %d bytes", tooLarge.Limit)}
		}
		return err
	}
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		return badJSON("body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badJSON("body must hold a single JSON object")
	}
	return nil
}

func badJSON(message string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: message}
}

func decodeError(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return badJSON(fmt.Sprintf("body is not valid JSON (at byte %d)", syntaxErr.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badJSON("body is not valid JSON (it ends too early)")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "a field has the wrong type",
			Fields: map[string]string{field: "must be " + jsonKind(typeErr.Type.Kind().String())}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &Error{Status: http.StatusBadRequest, Code: "unknown_field", Message: "the body has a field that cannot be set",
			Fields: map[string]string{field: "is not a field you can set"}}
	}
	return badJSON("body is not valid JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	}
	return "an object"
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The status is sent; a client that went away is not worth more than that.
	_ = json.NewEncoder(w).Encode(body)
}
