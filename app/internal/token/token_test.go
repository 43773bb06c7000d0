package token_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/packnow/packnow-operator/app/internal/token"
	"github.com/packnow/packnow-operator/app/keyring"
)

func manager(t testing.TB, set keyring.Set) *token.Manager {
	t.Helper()
	ring, err := set.Ring()
	if err != nil {
		t.Fatal(err)
	}
	m, err := token.NewManager(ring, "HS256", 15*time.Minute, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIssuedTokensParseOnlyAsTheirOwnType(t *testing.T) {
	m := manager(t, keyring.Set{Current: strings.Repeat("c", 64)})
	pair, err := m.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	claims, err := m.Parse(pair.Access, token.TypeAccess)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "user-1" || claims.SessionID != "session-1" || claims.ID == "" {
		t.Fatalf("unexpected claims %+v", claims)
	}
	if _, err := m.Parse(pair.Refresh, token.TypeRefresh); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Parse(pair.Refresh, token.TypeAccess); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("refresh token parsed as access: %v", err)
	}
	if _, err := m.Parse(pair.Access, token.TypeRefresh); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("access token parsed as refresh: %v", err)
	}
}

func TestNewManagerRefusesNonHMACAlgorithms(t *testing.T) {
	ring, err := keyring.New(strings.Repeat("c", 64), "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"none", "RS256", "ES256", "EdDSA", ""} {
		if _, err := token.NewManager(ring, alg, time.Minute, time.Hour); err == nil {
			t.Errorf("NewManager accepted %q", alg)
		}
	}
}

// TestTokensSurviveRotationUntilRetire follows CONVENTIONS: a token signed before a rotation
// keeps verifying on pods of every later generation until its key is retired.
func TestTokensSurviveRotationUntilRetire(t *testing.T) {
	oldKey, newKey := strings.Repeat("o", 64), strings.Repeat("n", 64)
	set := keyring.Set{Current: oldKey}
	before, err := manager(t, set).Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}

	staged, err := set.Stage(newKey)
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := staged.Promote()
	if err != nil {
		t.Fatal(err)
	}
	retired := promoted.Retire()

	// A pod of the staged generation still signs with the old key, and its tokens must verify
	// on pods of the previous generation, which do not know the new key yet.
	fromStaged, err := manager(t, staged).Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manager(t, set).Parse(fromStaged.Access, token.TypeAccess); err != nil {
		t.Fatalf("token from a staged pod rejected by an old pod: %v", err)
	}
	// A promoted pod signs with the new key, which staged pods already verify.
	fromPromoted, err := manager(t, promoted).Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manager(t, staged).Parse(fromPromoted.Refresh, token.TypeRefresh); err != nil {
		t.Fatalf("token from a promoted pod rejected by a staged pod: %v", err)
	}

	for name, s := range map[string]keyring.Set{"staged": staged, "promoted": promoted} {
		if _, err := manager(t, s).Parse(before.Refresh, token.TypeRefresh); err != nil {
			t.Errorf("after %s, a token signed before rotation was rejected: %v", name, err)
		}
	}
	if _, err := manager(t, retired).Parse(before.Refresh, token.TypeRefresh); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("after retire, a token signed with the retired key still verifies: %v", err)
	}
	if _, err := manager(t, retired).Parse(fromPromoted.Access, token.TypeAccess); err != nil {
		t.Fatalf("after retire, a token signed with the current key was rejected: %v", err)
	}
}

func TestHashIsStableAndDistinct(t *testing.T) {
	if string(token.Hash("a")) != string(token.Hash("a")) || string(token.Hash("a")) == string(token.Hash("b")) {
		t.Fatal("Hash is not a stable, distinguishing digest")
	}
	if token.NewSessionID() == token.NewSessionID() {
		t.Fatal("two session ids are equal")
	}
}

// FuzzParse feeds arbitrary strings to the token parser. Only a token this manager signed may
// pass, so nothing the fuzzer makes up should.
func FuzzParse(f *testing.F) {
	m := manager(f, keyring.Set{Current: strings.Repeat("c", 64)})
	pair, err := m.Issue("user-1", "session-1")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"", ".", "..", "a.b.c", pair.Access[:len(pair.Access)-2],
		"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.",
		strings.Replace(pair.Access, ".", "..", 1),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if raw == pair.Access || raw == pair.Refresh {
			return
		}
		for _, typ := range []string{token.TypeAccess, token.TypeRefresh} {
			if _, err := m.Parse(raw, typ); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("Parse(%q, %s) = %v, want ErrInvalid", raw, typ, err)
			}
		}
	})
}
