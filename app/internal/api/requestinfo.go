package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
)

// requestInfo is what the middleware learns about a request once, at the outermost layer, for
// the layers and handlers inside.
type requestInfo struct {
	// route is the pattern the request will be served by ("" when none matches), so that the
	// layers before the mux can treat routes differently and log them without raw paths.
	route    string
	id       string
	clientIP netip.Addr
	// client hashes the client IP with the User-Agent: the seed's client fingerprint.
	client string
}

type requestInfoKey struct{}

func requestInfoOf(r *http.Request) *requestInfo {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

// requestIDPattern is what an X-Request-ID from a trusted proxy must look like to be reused.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// identify resolves the route, the client and a request id, and sends the id back as
// X-Request-ID so that a client can quote it.
func (s *server) identify(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, route := mux.Handler(r)
		peer, fromProxy := s.peer(r)
		ip := peer
		if fromProxy {
			ip = s.forwardedClient(r, peer)
		}
		id := r.Header.Get("X-Request-ID")
		if !fromProxy || !requestIDPattern.MatchString(id) {
			id = rand.Text()
		}
		info := &requestInfo{
			route:    route,
			id:       id,
			clientIP: ip,
			client:   s.keyedHash("client", ip.String(), r.UserAgent()),
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
	})
}

// peer is the socket's remote address and whether it is a trusted proxy.
func (s *server) peer(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	return addr, s.trusted(addr)
}

func (s *server) trusted(addr netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// forwardedClient walks X-Forwarded-For from the right, where the nearest proxy appended what it
// saw, past every trusted proxy. The first untrusted address is the client: entries further left
// were written by whoever that client is and prove nothing.
func (s *server) forwardedClient(r *http.Request, peer netip.Addr) netip.Addr {
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = addr.Unmap()
		if !s.trusted(client) {
			break
		}
	}
	return client
}

// fingerprintKey derives the key of keyedHash from the signing key, so that replicas agree.
func fingerprintKey(secretKey string) []byte {
	k := sha256.Sum256([]byte("packnow client fingerprint\x00" + secretKey))
	return k[:]
}

// keyedHash is a short HMAC of the parts, for Redis keys and logs that must not reveal them.
func (s *server) keyedHash(kind string, parts ...string) string {
	m := hmac.New(sha256.New, s.fingerprintKey)
	m.Write([]byte(kind))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil)[:16])
}
