package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/packnow/packnow-operator/app/internal/audit"
	"github.com/packnow/packnow-operator/app/internal/credentials"
	"github.com/packnow/packnow-operator/app/internal/store"
)

type userResponse struct {
	ID        string    `json:"id"`
	Phone     string    `json:"phone"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func userView(u store.User) userResponse {
	return userResponse{ID: u.ID, Phone: u.Phone, Name: u.Name, Role: string(u.Role), CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func (s *server) getMe(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	u, err := s.store.UserByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

// updateMeRequest has no role field: the role is fixed at registration, and a body that tries
// to set it is refused as an unknown field.
type updateMeRequest struct {
	Name            *string `json:"name"`
	Phone           *string `json:"phone"`
	Password        *string `json:"password"`
	CurrentPassword string  `json:"current_password"`
}

// updateMe changes the caller's name, phone or password. Phone and password are credentials:
// changing them needs the current password, and a new password ends every other session.
func (s *server) updateMe(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	var req updateMeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	fields := fieldErrors{}
	var changes store.UserChanges
	if req.Name != nil {
		name := checkName(fields, *req.Name)
		changes.Name = &name
	}
	if req.Phone != nil {
		phone, err := credentials.NormalizePhone(*req.Phone)
		if err != nil {
			fields.add("phone", err.Error())
		}
		changes.Phone = &phone
	}
	if req.Password != nil {
		if err := credentials.CheckPassword(*req.Password); err != nil {
			fields.add("password", err.Error())
		}
	}
	if (req.Phone != nil || req.Password != nil) && req.CurrentPassword == "" {
		fields.add("current_password", "is required to change the phone number or password")
	}
	if err := fields.err(); err != nil {
		return err
	}
	u, err := s.store.UserByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	if req.CurrentPassword != "" {
		ok, err := s.passwordMatches(r.Context(), u.PasswordHash, req.CurrentPassword)
		if err != nil {
			return err
		}
		if !ok {
			return fieldErrors{"current_password": "is incorrect"}.err()
		}
	}
	if req.Password != nil {
		hash, err := s.hashPassword(r.Context(), *req.Password)
		if err != nil {
			return err
		}
		changes.PasswordHash = &hash
	}
	u, err = s.store.UpdateUser(r.Context(), p.UserID, changes, p.SessionID)
	if errors.Is(err, store.ErrPhoneTaken) {
		return conflict("phone_taken", "this phone number is already registered", map[string]string{"phone": "is already registered"})
	}
	if err != nil {
		return err
	}
	if req.Password != nil {
		s.record(r, audit.PasswordChange, p.UserID, nil)
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

type deleteMeRequest struct {
	Password string `json:"password"`
}

// deleteMe erases the caller's account. The password is asked again so that a stolen access
// token alone cannot destroy an account.
func (s *server) deleteMe(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	var req deleteMeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Password == "" {
		return fieldErrors{"password": "is required to delete the account"}.err()
	}
	u, err := s.store.UserByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	ok, err := s.passwordMatches(r.Context(), u.PasswordHash, req.Password)
	if err != nil {
		return err
	}
	if !ok {
		return fieldErrors{"password": "is incorrect"}.err()
	}
	if err := s.store.DeleteUser(r.Context(), p.UserID); err != nil {
		return err
	}
	s.record(r, audit.Deletion, p.UserID, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type sessionResponse struct {
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt time.Time  `json:"last_used_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

type auditResponse struct {
	Action    string         `json:"action"`
	IPAddress string         `json:"ip_address,omitempty"`
	Timestamp time.Time      `json:"timestamp"`
	Metadata  map[string]any `json:"metadata"`
}

type exportResponse struct {
	ExportedAt time.Time         `json:"exported_at"`
	User       userResponse      `json:"user"`
	Orders     []orderResponse   `json:"orders"`
	Sessions   []sessionResponse `json:"sessions"`
	AuditLog   []auditResponse   `json:"audit_log"`
}

// exportMe returns everything stored about the caller except secrets (the password hash and
// refresh-token hashes), which say nothing about them. The audit log is included: its IP
// addresses are personal data too.
func (s *server) exportMe(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	u, err := s.store.UserByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	orders, err := s.store.OrdersOf(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	sessions, err := s.store.SessionsOf(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	trail, err := s.store.AuditOf(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	out := exportResponse{
		ExportedAt: time.Now().UTC(),
		User:       userView(u),
		Orders:     make([]orderResponse, 0, len(orders)),
		Sessions:   make([]sessionResponse, 0, len(sessions)),
		AuditLog:   make([]auditResponse, 0, len(trail)),
	}
	for _, e := range trail {
		var ip string
		if e.IP.IsValid() {
			ip = e.IP.String()
		}
		out.AuditLog = append(out.AuditLog, auditResponse{Action: e.Action, IPAddress: ip, Timestamp: e.Timestamp, Metadata: e.Metadata})
	}
	for _, o := range orders {
		out.Orders = append(out.Orders, orderView(o))
	}
	for _, ss := range sessions {
		out.Sessions = append(out.Sessions, sessionResponse(ss))
	}
	s.record(r, audit.Export, p.UserID, nil)
	w.Header().Set("Content-Disposition", `attachment; filename="packnow-export.json"`)
	writeJSON(w, http.StatusOK, out)
	return nil
}
