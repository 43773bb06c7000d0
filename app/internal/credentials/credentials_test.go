package credentials_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/packnow/packnow-operator/app/internal/credentials"
)

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		password string
		want     string // substring of the error; empty means accepted
	}{
		{"Tr0ub4dor&3x", ""},
		{"Ünïcødé-Pässwörd9", ""},
		{"Sh0rt!", "at least 8 characters"},
		{"alllowercase1!", "uppercase letter"},
		{"ALLUPPERCASE1!", "lowercase letter"},
		{"NoDigitsHere!", "a digit"},
		{"NoSpecials123", "special character"},
		{"abc", "at least 8 characters long, contain an uppercase letter, contain a digit, contain a special character"},
		{"P@ssw0rd", "most commonly used"},
		{"!QAZ2wsx", "most commonly used"},
		{"Aa1!" + strings.Repeat("x", 69), "at most 72 bytes"},
		{"Aa1!" + strings.Repeat("é", 35), "at most 72 bytes"},
		{"Aa1!" + strings.Repeat("x", 68), ""},
		{"Aa1!xxxx\xff", "valid UTF-8"},
	}
	for _, tt := range tests {
		err := credentials.CheckPassword(tt.password)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckPassword(%q) = %v, want accepted", tt.password, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckPassword(%q) = %v, want error containing %q", tt.password, err, tt.want)
		}
	}
}

func TestEveryListedPasswordIsRefusedWhateverItsCase(t *testing.T) {
	data, err := os.ReadFile("common-passwords.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 10000 {
		t.Fatalf("list has %d entries, want 10000", len(lines))
	}
	refusedAsCommon := 0
	for _, p := range lines {
		// Capitalising the first letter is the usual way to satisfy an uppercase rule.
		candidate := strings.ToUpper(p[:1]) + p[1:]
		err := credentials.CheckPassword(candidate)
		if err == nil {
			t.Errorf("CheckPassword(%q) accepted a listed password", candidate)
		} else if strings.Contains(err.Error(), "most commonly used") {
			refusedAsCommon++
		}
	}
	if refusedAsCommon == 0 {
		t.Fatal("no listed password got past the composition rules, so the list was never consulted")
	}
}

func TestHashPasswordRoundTrips(t *testing.T) {
	hash, err := credentials.HashPassword("Tr0ub4dor&3x", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !credentials.PasswordMatches(hash, "Tr0ub4dor&3x") {
		t.Fatal("the password does not match its own hash")
	}
	if credentials.PasswordMatches(hash, "Tr0ub4dor&3X") {
		t.Fatal("a different password matches")
	}
	long := "Aa1!" + strings.Repeat("x", 68)
	longHash, err := credentials.HashPassword(long, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if credentials.PasswordMatches(longHash, long+"extra") {
		t.Fatal("bytes past the 72nd were ignored: a longer password matched")
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != bcrypt.MinCost {
		t.Fatalf("hash cost %d, want %d", cost, bcrypt.MinCost)
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"+14155550123", "+14155550123", ""},
		{" +1 (415) 555-0123 ", "+14155550123", ""},
		{"+44 20 7946 0958", "+442079460958", ""},
		{"+49 30 901820", "+4930901820", ""},
		{"4155550123", "", "international format"},
		{"", "", "international format"},
		{"+1 555", "", "not a valid phone number"},
		{"+999 1234567", "", "not a valid phone number"},
		{"+1 415 555 0123 ext. " + strings.Repeat("9", 60), "", "too long"},
		{"+abc", "", "not a valid phone number"},
	}
	for _, tt := range tests {
		got, err := credentials.NormalizePhone(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NormalizePhone(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+14155550123", "+1 (415) 555-0123", "+442079460958", "0044", "+", "++1", "+1 415 555 0123 ext 12", "+٤١٥٥٥٥٠١٢٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := credentials.NormalizePhone(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "+") || len(got) > 16 {
			t.Fatalf("NormalizePhone(%q) = %q, not E.164", raw, got)
		}
		again, err := credentials.NormalizePhone(got)
		if err != nil || again != got {
			t.Fatalf("normalised %q does not normalise to itself: %q, %v", got, again, err)
		}
	})
}

func FuzzCheckPassword(f *testing.F) {
	for _, s := range []string{"Tr0ub4dor&3x", "P@ssw0rd", "short", strings.Repeat("Aa1!", 19), "\xff\xfe", "ÄÖÜäöü12!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, password string) {
		if credentials.CheckPassword(password) != nil {
			return
		}
		// Whatever is accepted must be hashable by bcrypt without truncation.
		if len(password) > credentials.MaxPasswordBytes || !utf8.ValidString(password) ||
			utf8.RuneCountInString(password) < credentials.MinPasswordLength {
			t.Fatalf("CheckPassword accepted %q", password)
		}
	})
}

func TestGateBoundsConcurrentWork(t *testing.T) {
	g := credentials.NewGate(1, time.Millisecond)
	ctx := context.Background()
	hash, err := g.Hash(ctx, "Tr0ub4dor&3x", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Matches(ctx, hash, "Tr0ub4dor&3x"); !errors.Is(err, credentials.ErrBusy) {
		t.Fatalf("with every slot taken: %v, want ErrBusy", err)
	}
	if _, err := g.Hash(ctx, "Tr0ub4dor&3x", bcrypt.MinCost); !errors.Is(err, credentials.ErrBusy) {
		t.Fatalf("with every slot taken: %v, want ErrBusy", err)
	}
	g.Release()
	if ok, err := g.Matches(ctx, hash, "Tr0ub4dor&3x"); !ok || err != nil {
		t.Fatalf("after release: %v, %v", ok, err)
	}
	// A slot freed while waiting is taken.
	if err := g.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	waiting := credentials.NewGate(1, time.Minute)
	if err := waiting.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	go waiting.Release()
	if err := waiting.Acquire(ctx); err != nil {
		t.Fatalf("a slot freed during the wait was not taken: %v", err)
	}
}
