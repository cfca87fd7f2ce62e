package loginpage

import (
	"bytes"
	"html/template"
	"net/http"
)

// link is an SSO connector's link on the page.
type link struct{ Name, URL string }

// view is what page.html shows. Exactly one of Continue, SignedInAs, Form and Back decides
// the body; html/template escapes every field for where it lands (a client's name from the
// configuration and a user name are text, never markup).
type view struct {
	Title, Error string
	// Form: the sign-in form, for RequestID ("" for a plain sign-in), with Username kept
	// after a failure (never the password) and the SSO Connectors.
	Form       bool
	RequestID  string
	Username   string
	Connectors []link
	// SignedInAs: the signed-in page, with a sign-out button.
	SignedInAs string
	// Continue: the URL a completed request moves on to.
	Continue string
	// Back: a link to the plain sign-in, on a message page.
	Back string
	// Token is the form's CSRF token.
	Token string
}

// pageData is a view with what every page has.
type pageData struct {
	view
	CSS                        template.CSS
	LoginAction, SignoutAction string
}

// render writes v with status code.
func (h *Handler) render(w http.ResponseWriter, code int, v view) {
	var buf bytes.Buffer
	err := pageTemplate.Execute(&buf, pageData{view: v, CSS: template.CSS(styleCSS),
		LoginAction: Prefix + LoginPath, SignoutAction: Prefix + SignoutPath})
	if err != nil { // the template and its data are this package's: a bug
		h.log.Error("login page: render", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// message renders a page that only says something, with a way back to the sign-in.
func (h *Handler) message(w http.ResponseWriter, code int, title, msg string) {
	h.render(w, code, view{Title: title, Error: msg, Back: Prefix + LoginPath})
}

// form renders the sign-in form for the request id (with its client's name) with a fresh
// token.
func (h *Handler) form(w http.ResponseWriter, r *http.Request, code int, id, clientName, username, errMsg string) {
	title := "Sign in"
	if clientName != "" {
		title = "Sign in to " + clientName
	}
	token := formToken(browserValue(w, r), purposeLogin, id)
	h.render(w, code, view{Title: title, Error: errMsg, Form: true, RequestID: id, Username: username,
		Connectors: h.connectors(id), Token: token})
}
