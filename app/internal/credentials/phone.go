package credentials

import (
	"errors"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// maxPhoneInput bounds what is handed to the parser; real numbers with formatting are far shorter.
const maxPhoneInput = 64

// NormalizePhone parses an international phone number and returns it in E.164 form, the form
// it is stored and compared in. The error message is fit to show the user.
func NormalizePhone(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if len(raw) > maxPhoneInput {
		return "", errors.New("is too long")
	}
	if !strings.HasPrefix(raw, "+") {
		return "", errors.New("must be in international format, starting with + and the country code, e.g. +14155550123")
	}
	num, err := phonenumbers.Parse(raw, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", errors.New("is not a valid phone number")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}
