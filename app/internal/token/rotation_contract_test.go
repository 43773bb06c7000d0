package token_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/packnow/packnow-operator/app/internal/token"
	"github.com/packnow/packnow-operator/app/keyring"
)

// generation is the key set the pods of one rollout run with; the operator's rotation moves from one to the
// next with one write of the SECRET_KEY Secret and waits for the rollout before the next write.
type generation struct {
	name string
	keys keyring.Set
}

// rotationGenerations are the key sets of one rotation, built with the operator's own steps.
func rotationGenerations(t *testing.T) []generation {
	t.Helper()
	first, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	next, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	stable := keyring.Set{Current: first}
	staged, err := stable.Stage(next)
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := staged.Promote()
	if err != nil {
		t.Fatal(err)
	}
	return []generation{
		{"stable", stable},
		{"staged", staged},
		{"promoted", promoted},
		{"retired", promoted.Retire()},
	}
}

// During a rollout, pods of two neighbouring generations serve together and a client's requests reach either:
// every token one of them issues must verify on the other, access and refresh tokens alike.
func TestRotationContractNeighbouringGenerationsAcceptEachOthersTokens(t *testing.T) {
	gens := rotationGenerations(t)
	for i := range len(gens) - 1 {
		older, newer := gens[i], gens[i+1]
		for _, pair := range [][2]generation{{older, newer}, {newer, older}} {
			signer, verifier := pair[0], pair[1]
			t.Run(fmt.Sprintf("%s pod to %s pod", signer.name, verifier.name), func(t *testing.T) {
				issued, err := manager(t, signer.keys).Issue("user-1", "session-1")
				if err != nil {
					t.Fatal(err)
				}
				m := manager(t, verifier.keys)
				if _, err := m.Parse(issued.Access, token.TypeAccess); err != nil {
					t.Errorf("access token rejected: %v", err)
				}
				if _, err := m.Parse(issued.Refresh, token.TypeRefresh); err != nil {
					t.Errorf("refresh token rejected: %v", err)
				}
			})
		}
	}
}

// A token signed with the first key, by a pod of the stable or the staged generation, lives on through the
// promotion and stops verifying only when its key is retired, which the operator does once it has expired.
func TestRotationContractOldTokensLiveUntilRetire(t *testing.T) {
	gens := rotationGenerations(t)
	stable, staged, promoted, retired := gens[0], gens[1], gens[2], gens[3]
	for _, signer := range []generation{stable, staged} {
		issued, err := manager(t, signer.keys).Issue("user-1", "session-1")
		if err != nil {
			t.Fatal(err)
		}
		for _, verifier := range []generation{stable, staged, promoted} {
			if _, err := manager(t, verifier.keys).Parse(issued.Refresh, token.TypeRefresh); err != nil {
				t.Errorf("refresh token of a %s pod rejected by a %s pod: %v", signer.name, verifier.name, err)
			}
		}
		if _, err := manager(t, retired.keys).Parse(issued.Refresh, token.TypeRefresh); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("refresh token of a %s pod still verifies after its key was retired: %v", signer.name, err)
		}
	}
}

// Why the operator waits for each rollout: of pods two generations apart, one rejects what the other signs.
func TestRotationContractSkippingARolloutRejectsTokens(t *testing.T) {
	gens := rotationGenerations(t)
	stable, promoted := gens[0], gens[2]
	issued, err := manager(t, promoted.keys).Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manager(t, stable.keys).Parse(issued.Access, token.TypeAccess); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("a stable pod accepted a token signed with a key it never had: %v", err)
	}
}
