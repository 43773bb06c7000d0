// Package keyring holds the signing keys of the PackNow API and the rules for rotating them.
//
// The app and the operator share it so that both derive a key's id the same way and agree on
// which key signs and which keys only verify (see CONVENTIONS, "SECRET_KEY Secret").
package keyring

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Names of the environment variables and Secret keys that carry the keys.
const (
	EnvCurrent  = "SECRET_KEY"
	EnvNext     = "SECRET_KEY_NEXT"
	EnvPrevious = "SECRET_KEY_PREVIOUS"
)

// MinKeyLength is the shortest key accepted, in characters.
const MinKeyLength = 64

// generatedKeyBytes of randomness encode to 86 URL-safe characters, above MinKeyLength.
const generatedKeyBytes = 64

// KeyID returns the id that goes into a token's kid header: the lowercase hex of the first
// 8 bytes of the SHA-256 of the key string.
func KeyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// Generate returns a new random key, URL-safe and longer than MinKeyLength.
func Generate() (string, error) {
	b := make([]byte, generatedKeyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Key is one signing key and its id.
type Key struct {
	ID     string
	Secret []byte
}

// Ring signs with the current key and verifies with the current, next and previous keys.
type Ring struct {
	signing   Key
	verifiers map[string][]byte
}

// New builds a Ring. current is required; next and previous may be empty. Every key given must
// be at least MinKeyLength characters long.
func New(current, next, previous string) (*Ring, error) {
	if current == "" {
		return nil, fmt.Errorf("%s is required", EnvCurrent)
	}
	var problems []error
	for _, k := range []struct{ name, value string }{
		{EnvCurrent, current}, {EnvNext, next}, {EnvPrevious, previous},
	} {
		if k.value != "" && len(k.value) < MinKeyLength {
			problems = append(problems, fmt.Errorf("%s must be at least %d characters, got %d", k.name, MinKeyLength, len(k.value)))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	r := &Ring{
		signing:   Key{ID: KeyID(current), Secret: []byte(current)},
		verifiers: map[string][]byte{},
	}
	for _, k := range []string{current, next, previous} {
		if k != "" {
			r.verifiers[KeyID(k)] = []byte(k)
		}
	}
	return r, nil
}

// Signing returns the key that signs new tokens.
func (r *Ring) Signing() Key {
	return r.signing
}

// Verifier returns the key whose id is kid, if the ring holds one.
func (r *Ring) Verifier(kid string) ([]byte, bool) {
	key, ok := r.verifiers[kid]
	return key, ok
}

// Set is the content of the SECRET_KEY Secret. Its methods are the rotation steps; each returns
// the Set to write back, so every step is one write.
type Set struct {
	Current  string
	Next     string
	Previous string
}

// ErrAlreadyStaged is returned by Stage when a next key is already staged.
var ErrAlreadyStaged = errors.New("a next key is already staged")

// ErrNothingStaged is returned by Promote when there is no next key to promote.
var ErrNothingStaged = errors.New("no next key is staged")

// Stage adds next as the staged key: pods verify with it but do not sign with it yet.
func (s Set) Stage(next string) (Set, error) {
	if s.Next != "" {
		return s, ErrAlreadyStaged
	}
	if len(next) < MinKeyLength {
		return s, fmt.Errorf("next key must be at least %d characters", MinKeyLength)
	}
	s.Next = next
	return s, nil
}

// Promote makes the staged key the signing key and keeps the old signing key as previous, so
// tokens it signed still verify.
func (s Set) Promote() (Set, error) {
	if s.Next == "" {
		return s, ErrNothingStaged
	}
	return Set{Current: s.Next, Previous: s.Current}, nil
}

// Retire drops the previous key; tokens it signed stop verifying.
func (s Set) Retire() Set {
	s.Previous = ""
	return s
}

// Ring builds the Ring that pods given this Set use.
func (s Set) Ring() (*Ring, error) {
	return New(s.Current, s.Next, s.Previous)
}
