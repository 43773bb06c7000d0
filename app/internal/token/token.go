// Package token issues and checks the API's JWTs: short-lived access tokens and the refresh
// tokens that renew them.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/packnow/packnow-operator/app/keyring"
)

// Token types, carried in the typ claim so one kind can never be used as the other.
const (
	TypeAccess  = "access"
	TypeRefresh = "refresh"
)

// Issuer and Audience are fixed: tokens of this API are only for this API.
const (
	Issuer   = "packnow-api"
	Audience = "packnow-api"
)

// clockSkew tolerated between replicas when checking exp, nbf and iat.
const clockSkew = 30 * time.Second

// ErrInvalid is the one error callers see for any bad token; why it is bad is not their
// business (nor an attacker's).
var ErrInvalid = errors.New("invalid token")

// Claims are the claims of both token types.
type Claims struct {
	jwt.RegisteredClaims
	Type      string `json:"typ"`
	SessionID string `json:"sid"`
}

// Pair is what a login or a refresh hands out.
type Pair struct {
	Access           string
	Refresh          string
	IssuedAt         time.Time
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// Manager signs and verifies tokens with a key ring.
type Manager struct {
	ring       *keyring.Ring
	method     jwt.SigningMethod
	accessTTL  time.Duration
	refreshTTL time.Duration
}

// NewManager returns a Manager that signs with algorithm (an HMAC algorithm name such as HS256)
// and accepts no other.
func NewManager(ring *keyring.Ring, algorithm string, accessTTL, refreshTTL time.Duration) (*Manager, error) {
	method, ok := jwt.GetSigningMethod(algorithm).(*jwt.SigningMethodHMAC)
	if !ok {
		return nil, fmt.Errorf("unsupported signing algorithm %q", algorithm)
	}
	return &Manager{ring: ring, method: method, accessTTL: accessTTL, refreshTTL: refreshTTL}, nil
}

// Issue signs a new access and refresh token for a user's session.
func (m *Manager) Issue(userID, sessionID string) (Pair, error) {
	now := time.Now()
	access, err := m.sign(TypeAccess, userID, sessionID, now, m.accessTTL)
	if err != nil {
		return Pair{}, err
	}
	refresh, err := m.sign(TypeRefresh, userID, sessionID, now, m.refreshTTL)
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		Access:           access,
		Refresh:          refresh,
		IssuedAt:         now,
		AccessExpiresAt:  now.Add(m.accessTTL),
		RefreshExpiresAt: now.Add(m.refreshTTL),
	}, nil
}

func (m *Manager) sign(typ, userID, sessionID string, now time.Time, ttl time.Duration) (string, error) {
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		Type:      typ,
		SessionID: sessionID,
	}
	key := m.ring.Signing()
	t := jwt.NewWithClaims(m.method, claims)
	t.Header["kid"] = key.ID
	return t.SignedString(key.Secret)
}

// Parse verifies a token of the wanted type and returns its claims. The key is chosen only by
// the kid header among the ring's keys, and only the configured algorithm is accepted.
func (m *Manager) Parse(raw, wantType string) (Claims, error) {
	var claims Claims
	_, err := jwt.ParseWithClaims(raw, &claims, m.key,
		jwt.WithValidMethods([]string{m.method.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(clockSkew),
		jwt.WithStrictDecoding(),
	)
	if err != nil || claims.Type != wantType || claims.Subject == "" || claims.SessionID == "" || claims.ID == "" ||
		claims.NotBefore == nil {
		return Claims{}, ErrInvalid
	}
	return claims, nil
}

func (m *Manager) key(t *jwt.Token) (any, error) {
	kid, ok := t.Header["kid"].(string)
	if !ok {
		return nil, ErrInvalid
	}
	key, ok := m.ring.Verifier(kid)
	if !ok {
		return nil, ErrInvalid
	}
	return key, nil
}

// Hash is what the server keeps of a refresh token: enough to recognise it, useless to replay.
func Hash(raw string) []byte {
	sum := sha256.Sum256([]byte(raw))
	return sum[:]
}

// NewSessionID returns a random, unguessable session id.
func NewSessionID() string {
	return rand.Text()
}
