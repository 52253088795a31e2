package protocol

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A page allowed to POST /sync can read the server's refusals too: the
// 503 of a server shutting down (or full) names its origin in
// Access-Control-Allow-Origin, else the browser hides the answer and the
// page sees a network error in place of a status to retry on. A page not
// allowed still gets no such header.
func TestServer_postSyncCORS_errorAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret), OriginPatterns: []string{"app.example.com"}}})
	e.srv.mu.Lock()
	e.srv.closed = true // as while shutting down
	e.srv.mu.Unlock()
	t.Cleanup(func() {
		e.srv.mu.Lock()
		e.srv.closed = false
		e.srv.mu.Unlock()
	})
	post := func(origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/sync", strings.NewReader(""))
		r.Header.Set("Origin", origin)
		w := httptest.NewRecorder()
		e.srv.ServeHTTPSync(w, r)
		return w
	}
	w := post("https://app.example.com")
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("POST /sync while shutting down: %d, want 503", w.Code)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
		t.Errorf("503 to an allowed origin: Access-Control-Allow-Origin = %q, want the origin", got)
	}
	if got := post("https://evil.example").Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("503 to an origin not allowed: Access-Control-Allow-Origin = %q, want none", got)
	}
}
