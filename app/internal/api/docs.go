package api

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// openAPIDocument describes every route in routes.go; a test keeps the two in step.
//
//go:embed openapi.json
var openAPIDocument []byte

func (s *server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPIDocument)
	return err
}

type docOperation struct {
	Method, Path, Summary, Description string
	// Public operations override the document's bearer requirement with "security": [].
	Public bool
}

type docPage struct {
	Title, Description string
	Operations         []docOperation
	Document           string
}

// docsStyle is the page's only style; the page's CSP admits it by hash, and nothing else.
const docsStyle = `body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}` +
	`table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}` +
	`code{font-size:90%}pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:13px}`

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title><style>` + docsStyle + `</style></head>
<body><h1>{{.Title}}</h1><p>{{.Description}}</p>
<p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3).</p>
<table><tr><th>Method</th><th>Path</th><th>What it does</th><th>Auth</th></tr>
{{range .Operations}}<tr><td><code>{{.Method}}</code></td><td><code>{{.Path}}</code></td><td><b>{{.Summary}}</b>{{with .Description}}<br>{{.}}{{end}}</td><td>{{if .Public}}none{{else}}Bearer{{end}}</td></tr>
{{end}}</table>
<h2>Document</h2><pre>{{.Document}}</pre></body></html>
`))

// docsPage is rendered once at start from the embedded document: it loads nothing, from the
// internet or from here, so its CSP can forbid everything but its own stylesheet.
var docsPage, docsCSP = func() ([]byte, string) {
	var doc struct {
		Info struct {
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"info"`
		Paths map[string]map[string]struct {
			Summary     string            `json:"summary"`
			Description string            `json:"description"`
			Security    []json.RawMessage `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		panic(fmt.Sprintf("api: openapi.json: %v", err))
	}
	page := docPage{Title: doc.Info.Title, Description: doc.Info.Description}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			page.Operations = append(page.Operations, docOperation{Method: strings.ToUpper(method), Path: path,
				Summary: op.Summary, Description: op.Description, Public: op.Security != nil})
		}
	}
	slices.SortFunc(page.Operations, func(a, b docOperation) int {
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, openAPIDocument, "", "  ")
	page.Document = pretty.String()
	var out bytes.Buffer
	if err := docsTemplate.Execute(&out, page); err != nil {
		panic(fmt.Sprintf("api: docs page: %v", err))
	}
	hash := sha256.Sum256([]byte(docsStyle))
	return out.Bytes(), "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(hash[:]) + "'; frame-ancestors 'none'"
}()

func (s *server) docs(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", docsCSP)
	_, err := w.Write(docsPage)
	return err
}
