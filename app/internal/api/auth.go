package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/credentials"
	"github.com/packnow/packnow-operator/app/internal/store"
	"github.com/packnow/packnow-operator/app/internal/token"
)

// authed wraps a handler that needs a logged-in caller. The access token must be valid and its
// session still live: logout, password change, account deletion and refresh-token reuse end a
// session, and its access tokens stop working at once, not when they expire.
func (s *server) authed(h func(w http.ResponseWriter, r *http.Request, p store.Principal) error) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		raw, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			return errUnauthorized
		}
		claims, err := s.tokens.Parse(raw, token.TypeAccess)
		if err != nil {
			return errUnauthorized
		}
		p, err := s.store.ActiveSession(r.Context(), claims.SessionID, claims.Subject)
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		if err != nil {
			return err
		}
		return h(w, r, p)
	})
}

// bearerToken takes the token out of an Authorization header; the scheme name is
// case-insensitive (RFC 9110, section 11.1).
func bearerToken(header string) (string, bool) {
	scheme, raw, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	raw = strings.TrimSpace(raw)
	return raw, raw != ""
}

type registerRequest struct {
	Phone    string `json:"phone"`
	Password string `json:"password"`
	Role     string `json:"role"`
	Name     string `json:"name"`
}

const maxNameLength = 100

func checkName(fields fieldErrors, name string) string {
	name = strings.TrimSpace(name)
	if len([]rune(name)) > maxNameLength {
		fields.add("name", "must be at most 100 characters")
	}
	return name
}

func (s *server) register(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	fields := fieldErrors{}
	phone, err := credentials.NormalizePhone(req.Phone)
	if err != nil {
		fields.add("phone", err.Error())
	}
	if err := credentials.CheckPassword(req.Password); err != nil {
		fields.add("password", err.Error())
	}
	role := store.Role(req.Role)
	if role != store.RoleUser && role != store.RolePacker {
		fields.add("role", `must be "user" or "packer"`)
	}
	name := checkName(fields, req.Name)
	if err := fields.err(); err != nil {
		return err
	}
	hash, err := s.hashPassword(r.Context(), req.Password)
	if err != nil {
		return err
	}
	u, err := s.store.CreateUser(r.Context(), phone, hash, name, role)
	if errors.Is(err, store.ErrPhoneTaken) {
		return conflict("phone_taken", "this phone number is already registered", map[string]string{"phone": "is already registered"})
	}
	if err != nil {
		return err
	}
	s.record(r, audit.Register, u.ID, map[string]any{"role": string(u.Role)})
	writeJSON(w, http.StatusCreated, userView(u))
	return nil
}

type loginRequest struct {
	Phone    string `json:"phone"`
	Password string `json:"password"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

func tokenView(p token.Pair) tokenResponse {
	return tokenResponse{
		AccessToken:  p.Access,
		RefreshToken: p.Refresh,
		TokenType:    "Bearer",
		ExpiresIn:    int(p.AccessExpiresAt.Sub(p.IssuedAt).Seconds()),
	}
}

// login answers an unknown phone and a wrong password the same way, after the same bcrypt
// work, so that it does not reveal which phone numbers have accounts. Attempts count towards a
// lockout of the phone number, known or not; while it lasts no password is even checked. An
// attempt whose password could not be checked (server busy or failing) is given back.
func (s *server) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.metrics.logins.WithLabelValues("invalid_request").Inc()
		return err
	}
	fields := fieldErrors{}
	phone, err := credentials.NormalizePhone(req.Phone)
	if err != nil {
		fields.add("phone", err.Error())
	}
	if req.Password == "" {
		fields.add("password", "is required")
	}
	if err := fields.err(); err != nil {
		s.metrics.logins.WithLabelValues("invalid_request").Inc()
		return err
	}
	lockKey := s.keyedHash("phone", phone)
	attempt, locked, err := s.lockout.attempt(r.Context(), lockKey)
	if err != nil && !s.redisFailure(r, "lockout", err) {
		return errRedisUnavailable
	}
	if locked > 0 {
		s.metrics.logins.WithLabelValues("locked").Inc()
		s.record(r, audit.LoginFailure, "", map[string]any{"reason": "locked"})
		return &Error{Status: http.StatusTooManyRequests, Code: "account_locked",
			Message: "too many failed logins; try again later", RetryAfter: ceilSeconds(locked)}
	}
	unchecked := func(err error) error {
		if rerr := s.lockout.release(r.Context(), lockKey); rerr != nil {
			s.redisFailure(r, "lockout", rerr)
		}
		return err
	}
	u, err := s.store.UserByPhone(r.Context(), phone)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return unchecked(err)
	}
	hash := u.PasswordHash
	if !known {
		hash = s.dummyHash
	}
	matches, err := s.passwordMatches(r.Context(), hash, req.Password)
	if err != nil {
		return unchecked(err)
	}
	if !matches || !known {
		s.metrics.logins.WithLabelValues("invalid_credentials").Inc()
		reason := "wrong_password"
		if !known {
			reason = "unknown_phone"
		}
		s.record(r, audit.LoginFailure, u.ID, map[string]any{"reason": reason})
		lockedNow, err := s.lockout.failed(r.Context(), lockKey, attempt)
		if err != nil && !s.redisFailure(r, "lockout", err) {
			return errRedisUnavailable
		}
		if lockedNow {
			s.record(r, audit.Lockout, u.ID, map[string]any{"duration_seconds": int(s.cfg.LockoutDuration.Seconds())})
		}
		return errBadLogin
	}
	if err := s.lockout.reset(r.Context(), lockKey); err != nil && !s.redisFailure(r, "lockout", err) {
		return errRedisUnavailable
	}
	pair, err := s.startSession(r.Context(), u.ID)
	if err != nil {
		return err
	}
	s.metrics.logins.WithLabelValues("success").Inc()
	s.record(r, audit.LoginSuccess, u.ID, nil)
	noCompression(w)
	writeJSON(w, http.StatusOK, tokenView(pair))
	return nil
}

// passwordMatches checks a password within the bcrypt gate.
func (s *server) passwordMatches(ctx context.Context, hash, password string) (bool, error) {
	ok, err := s.bcrypt.Matches(ctx, hash, password)
	if errors.Is(err, credentials.ErrBusy) {
		return false, errBusy
	}
	return ok, err
}

// hashPassword hashes a password within the bcrypt gate.
func (s *server) hashPassword(ctx context.Context, password string) (string, error) {
	hash, err := s.bcrypt.Hash(ctx, password, s.cfg.BcryptCost)
	if errors.Is(err, credentials.ErrBusy) {
		return "", errBusy
	}
	return hash, err
}

func (s *server) startSession(ctx context.Context, userID string) (token.Pair, error) {
	sessionID := token.NewSessionID()
	pair, err := s.tokens.Issue(userID, sessionID)
	if err != nil {
		return token.Pair{}, err
	}
	if err := s.store.CreateSession(ctx, sessionID, userID, token.Hash(pair.Refresh), pair.RefreshExpiresAt); err != nil {
		return token.Pair{}, err
	}
	return pair, nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refresh trades a refresh token for a new pair. Each refresh token works once; presenting one
// again means it was stolen or replayed, and the whole session is ended (OWASP ASVS 10.4.5).
func (s *server) refresh(w http.ResponseWriter, r *http.Request) error {
	var req refreshRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return fieldErrors{"refresh_token": "is required"}.err()
	}
	claims, err := s.tokens.Parse(req.RefreshToken, token.TypeRefresh)
	if err != nil {
		return errUnauthorized
	}
	pair, err := s.tokens.Issue(claims.Subject, claims.SessionID)
	if err != nil {
		return err
	}
	err = s.store.RotateRefresh(r.Context(), claims.SessionID, token.Hash(req.RefreshToken), token.Hash(pair.Refresh), pair.RefreshExpiresAt)
	if errors.Is(err, store.ErrRefreshReused) {
		s.logger.WarnContext(r.Context(), "refresh token reused; session revoked", "user_id", claims.Subject)
		s.record(r, audit.RefreshReuse, claims.Subject, nil)
		return errUnauthorized
	}
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	if err != nil {
		return err
	}
	s.record(r, audit.Refresh, claims.Subject, nil)
	noCompression(w)
	writeJSON(w, http.StatusOK, tokenView(pair))
	return nil
}

func (s *server) logout(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if err := s.store.RevokeSession(r.Context(), p.SessionID); err != nil {
		return err
	}
	s.record(r, audit.Logout, p.UserID, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
