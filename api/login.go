package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/http"
	"time"
)

// The dashboard and the Restate UI run in a browser, which cannot add a
// bearer token to the requests they make: with a token set, /login takes it once and
// sets a cookie the API accepts in its place (HttpOnly, SameSite=Strict,
// holding a digest of the token rather than the token).

const consoleCookie = "ultramcp_console"

func (s *Server) cookieValue() string {
	m := hmac.New(sha256.New, []byte(s.cfg.APIToken))
	m.Write([]byte("ultramcp console cookie v1"))
	return hex.EncodeToString(m.Sum(nil))
}

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>UltraMCP — sign in</title></head>
<body style="font-family:sans-serif;max-width:30em;margin:4em auto">
<h1>UltraMCP</h1>
{{if .Failed}}<p style="color:#b00">That is not the API's token.</p>{{end}}
<form method="post" action="/login">
<label>API token (ULTRAMCP_API_TOKEN)<br><input type="password" name="token" autofocus size="40"></label>
<input type="hidden" name="next" value="{{.Next}}">
<p><button type="submit">Sign in</button></p>
</form></body></html>`))

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = loginForm.Execute(w, struct {
		Next   string
		Failed bool
	}{next, r.URL.Query().Has("failed")})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if s.cfg.APIToken == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	a, b := sha256.Sum256([]byte(r.PostForm.Get("token"))), sha256.Sum256([]byte(s.cfg.APIToken))
	if !hmac.Equal(a[:], b[:]) {
		http.Redirect(w, r, "/login?failed=1&next="+template.URLQueryEscaper(next), http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: s.cookieValue(), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Expires: time.Now().Add(12 * time.Hour)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// safeNext is where to go after the login: a path of this API, else the
// dashboard, never another site (no open redirect).
func safeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/"
	}
	return next
}
