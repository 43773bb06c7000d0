package keyring_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/packnow/packnow-operator/app/keyring"
)

func key(c byte) string { return strings.Repeat(string(c), keyring.MinKeyLength) }

func TestKeyIDIsFirstEightBytesOfSHA256InLowerHex(t *testing.T) {
	// sha256("abc") = ba7816bf8f01cfea414140de5dae2223...
	if got := keyring.KeyID("abc"); got != "ba7816bf8f01cfea" {
		t.Fatalf("KeyID(abc) = %q, want ba7816bf8f01cfea", got)
	}
}

func TestGenerateGivesDistinctURLSafeKeysOfMinimumLength(t *testing.T) {
	a, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	if len(a) < keyring.MinKeyLength {
		t.Fatalf("generated key has %d characters, want >= %d", len(a), keyring.MinKeyLength)
	}
	if strings.ContainsAny(a, "+/=") {
		t.Fatalf("generated key %q is not URL-safe", a)
	}
}

func TestNewRejectsMissingOrShortKeys(t *testing.T) {
	tests := []struct {
		name                    string
		current, next, previous string
		wantInError             []string
	}{
		{"no current", "", key('n'), "", []string{"SECRET_KEY is required"}},
		{"short current", "short", "", "", []string{"SECRET_KEY must be at least 64"}},
		{"short next and previous", key('c'), "x", "y", []string{"SECRET_KEY_NEXT must", "SECRET_KEY_PREVIOUS must"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keyring.New(tt.current, tt.next, tt.previous)
			if err == nil {
				t.Fatal("New accepted bad keys")
			}
			for _, want := range tt.wantInError {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestRingSignsWithCurrentAndVerifiesOnlyKnownKids(t *testing.T) {
	r, err := keyring.New(key('c'), key('n'), key('p'))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Signing(); got.ID != keyring.KeyID(key('c')) || string(got.Secret) != key('c') {
		t.Fatalf("Signing() = %q, want the current key", got.ID)
	}
	for _, k := range []string{key('c'), key('n'), key('p')} {
		got, ok := r.Verifier(keyring.KeyID(k))
		if !ok || string(got) != k {
			t.Errorf("Verifier(%s) did not return its key", keyring.KeyID(k))
		}
	}
	for _, kid := range []string{"", "../../etc/passwd", keyring.KeyID(key('x')), strings.ToUpper(keyring.KeyID(key('c')))} {
		if _, ok := r.Verifier(kid); ok {
			t.Errorf("Verifier(%q) found a key", kid)
		}
	}
}

// TestRotationKeepsOldSignaturesVerifiableUntilRetire walks the three steps of CONVENTIONS and
// checks, at each one, which keys pods would verify a token with.
func TestRotationKeepsOldSignaturesVerifiableUntilRetire(t *testing.T) {
	old, next := key('o'), key('n')
	set := keyring.Set{Current: old}
	verifies := func(t *testing.T, s keyring.Set, signer string) bool {
		t.Helper()
		r, err := s.Ring()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := r.Verifier(keyring.KeyID(signer))
		return ok && bytes.Equal(got, []byte(signer))
	}
	signerOf := func(t *testing.T, s keyring.Set) string {
		t.Helper()
		r, err := s.Ring()
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Signing().Secret)
	}

	staged, err := set.Stage(next)
	if err != nil {
		t.Fatal(err)
	}
	if signerOf(t, staged) != old {
		t.Fatal("staging changed the signing key")
	}
	if !verifies(t, staged, old) || !verifies(t, staged, next) {
		t.Fatal("after stage, pods must verify with both the old and the staged key")
	}
	if _, err := staged.Stage(key('z')); !errors.Is(err, keyring.ErrAlreadyStaged) {
		t.Fatalf("second Stage: err = %v, want ErrAlreadyStaged", err)
	}

	promoted, err := staged.Promote()
	if err != nil {
		t.Fatal(err)
	}
	if signerOf(t, promoted) != next || promoted.Next != "" || promoted.Previous != old {
		t.Fatalf("after promote got %+v, want Current=next, Previous=old, no Next", promoted)
	}
	if !verifies(t, promoted, old) {
		t.Fatal("after promote, tokens signed with the old key must still verify")
	}
	if _, err := promoted.Promote(); !errors.Is(err, keyring.ErrNothingStaged) {
		t.Fatalf("Promote without a staged key: err = %v, want ErrNothingStaged", err)
	}

	retired := promoted.Retire()
	if verifies(t, retired, old) {
		t.Fatal("after retire, tokens signed with the old key must not verify")
	}
	if !verifies(t, retired, next) {
		t.Fatal("after retire, tokens signed with the current key must verify")
	}
}

func TestStageRejectsShortKey(t *testing.T) {
	if _, err := (keyring.Set{Current: key('c')}).Stage("short"); err == nil {
		t.Fatal("Stage accepted a short key")
	}
}
