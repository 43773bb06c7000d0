package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// passwordLength is the length of generated database and Redis passwords: 240 random bits.
const passwordLength = 40

// randomURLSafe returns n characters from the URL-safe base64 alphabet, each carrying six bits from crypto/rand.
// URL-safe values need no escaping in DATABASE_URL or REDIS_URL.
func randomURLSafe(n int) (string, error) {
	b := make([]byte, base64.RawURLEncoding.DecodedLen(n)+1)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)[:n], nil
}
