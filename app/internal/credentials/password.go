// Package credentials checks and stores what users log in with: phone numbers and passwords.
package credentials

import (
	_ "embed"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLength is counted in characters; MaxPasswordBytes is bcrypt's input limit, beyond
// which it would silently ignore the rest of the password.
const (
	MinPasswordLength = 8
	MaxPasswordBytes  = 72
)

// commonPasswords holds the 10,000 most common passwords, lowercase; see common-passwords.LICENSE.
//
//go:embed common-passwords.txt
var commonPasswordsFile string

var commonPasswords = func() map[string]struct{} {
	set := make(map[string]struct{}, 10000)
	for _, p := range strings.Split(commonPasswordsFile, "\n") {
		if p != "" {
			set[p] = struct{}{}
		}
	}
	return set
}()

// CheckPassword returns nil for an acceptable password, otherwise an error whose message lists
// every rule it breaks, fit to show the user.
func CheckPassword(password string) error {
	if !utf8.ValidString(password) {
		return errors.New("must be valid UTF-8 text")
	}
	if len(password) > MaxPasswordBytes {
		return errors.New("must be at most 72 bytes long (fewer characters if you use accents or emoji)")
	}
	var upper, lower, digit, special bool
	for _, r := range password {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case !unicode.IsLetter(r):
			special = true
		}
	}
	var problems []string
	if utf8.RuneCountInString(password) < MinPasswordLength {
		problems = append(problems, "be at least 8 characters long")
	}
	for _, rule := range []struct {
		ok   bool
		text string
	}{
		{upper, "contain an uppercase letter"},
		{lower, "contain a lowercase letter"},
		{digit, "contain a digit"},
		{special, "contain a special character"},
	} {
		if !rule.ok {
			problems = append(problems, rule.text)
		}
	}
	if len(problems) > 0 {
		return errors.New("must " + strings.Join(problems, ", "))
	}
	if _, common := commonPasswords[strings.ToLower(password)]; common {
		return errors.New("is one of the most commonly used passwords; choose another")
	}
	return nil
}

// HashPassword hashes an already checked password with bcrypt at the given cost.
func HashPassword(password string, cost int) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", err
	}
	return string(hash), nil
}

// PasswordMatches reports whether password is the one hashed into hash. A password over
// bcrypt's limit never matches, so that extra bytes after the 72nd cannot ride along.
func PasswordMatches(hash, password string) bool {
	if len(password) > MaxPasswordBytes {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
