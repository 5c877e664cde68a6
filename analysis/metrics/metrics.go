// Package metrics measures a checkout: lines of code and complexity per
// language and per file with scc's own counting (its processor package),
// the most complex Go functions with gocyclo and gocognit, and the
// test-to-code ratio.
package metrics

import (
	"context"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/boyter/scc/v3/processor"
	"github.com/fzipp/gocyclo"
	"github.com/uudashr/gocognit"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/fault"
)

// Limits, as scc applies by default.
const (
	maxFileBytes = 1_000_000
	// MaxFiles bounds the per-file list in the report.
	MaxFiles = 200
	// MaxFunctions bounds the most-complex-functions list.
	MaxFunctions = 20
)

var sccOnce sync.Once

// scc keeps its language tables in package globals: fill them once; later
// writes (LoadLanguageFeature) take scc's own lock.
func sccInit() { sccOnce.Do(processor.ProcessConstants) }

// Measure computes the metrics of the tree at dir.
func Measure(ctx context.Context, dir string) (*analysis.Metrics, error) {
	sccInit()
	t := &tally{langs: map[string]*analysis.LanguageStats{}, m: &analysis.Metrics{}, fset: token.NewFileSet()}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".hg", ".svn":
				return filepath.SkipDir
			}
			return nil
		}
		if job := countFile(path, d); job != nil {
			rel, _ := filepath.Rel(dir, path)
			t.add(filepath.ToSlash(rel), job)
		}
		return nil
	})
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "measure")
	}
	return t.metrics(), nil
}

// countFile counts a regular file's lines and complexity as scc does; nil
// for a file that is not code (unknown language, binary, too large).
func countFile(path string, d fs.DirEntry) *processor.FileJob {
	if !d.Type().IsRegular() {
		return nil
	}
	info, err := d.Info()
	if err != nil || info.Size() > maxFileBytes {
		return nil
	}
	possible, ext := processor.DetectLanguage(d.Name())
	if len(possible) == 0 {
		return nil
	}
	content, err := analysis.ReadFile(path, maxFileBytes)
	if err != nil {
		return nil
	}
	job := &processor.FileJob{
		Filename: d.Name(), Location: path, Extension: ext,
		Language:          processor.DetermineLanguage(d.Name(), possible[0], possible, content),
		PossibleLanguages: possible, Content: content, Bytes: int64(len(content)),
	}
	if job.Language == processor.SheBang {
		// As scc does: a file without extension counts only if its #! line
		// names a known language.
		lang, err := processor.DetectSheBang(string(content[:min(len(content), 200)]))
		if err != nil {
			return nil
		}
		job.Language = lang
		processor.LoadLanguageFeature(lang)
	}
	processor.CountStats(job)
	if job.Binary {
		return nil
	}
	return job
}

// tally adds up the files' counts.
type tally struct {
	langs map[string]*analysis.LanguageStats
	files []analysis.FileStats
	m     *analysis.Metrics
	fset  *token.FileSet
	cyclo gocyclo.Stats
	cogn  []gocognit.Stat
}

func (t *tally) add(rel string, job *processor.FileJob) {
	l := t.langs[job.Language]
	if l == nil {
		l = &analysis.LanguageStats{Name: job.Language}
		t.langs[job.Language] = l
	}
	l.Files++
	l.Lines += job.Lines
	l.Code += job.Code
	l.Comment += job.Comment
	l.Blank += job.Blank
	l.Complexity += job.Complexity
	t.files = append(t.files, analysis.FileStats{Path: rel, Language: job.Language, Lines: job.Lines, Code: job.Code, Complexity: job.Complexity})
	if isTest(rel) {
		t.m.TestLines += job.Code
	} else if isSource(job.Language) {
		t.m.CodeLines += job.Code
	}
	if job.Language == "Go" {
		// Parsing is not running: the AST is only read.
		if f, err := parser.ParseFile(t.fset, rel, job.Content, parser.SkipObjectResolution); err == nil {
			t.cyclo = gocyclo.AnalyzeASTFile(f, t.fset, t.cyclo)
			t.cogn = gocognit.ComplexityStats(f, t.fset, t.cogn)
		}
	}
}

// metrics are the totals, languages and files by size of code.
func (t *tally) metrics() *analysis.Metrics {
	m := t.m
	for _, l := range t.langs {
		m.Languages = append(m.Languages, *l)
	}
	sort.Slice(m.Languages, func(i, j int) bool {
		if m.Languages[i].Code != m.Languages[j].Code {
			return m.Languages[i].Code > m.Languages[j].Code
		}
		return m.Languages[i].Name < m.Languages[j].Name
	})
	files := t.files
	sort.Slice(files, func(i, j int) bool {
		if files[i].Code != files[j].Code {
			return files[i].Code > files[j].Code
		}
		return files[i].Path < files[j].Path
	})
	m.Files = files[:min(len(files), MaxFiles)]
	m.Functions = complexFunctions(t.cyclo, t.cogn)
	if m.CodeLines > 0 {
		m.TestRatio = float64(m.TestLines) / float64(m.CodeLines)
	}
	return m
}

// complexFunctions joins both measures per function, most complex first.
func complexFunctions(cyclo gocyclo.Stats, cogn []gocognit.Stat) []analysis.FunctionComplexity {
	key := func(file string, line int, fn string) string { return file + ":" + fn + ":" + strconv.Itoa(line) }
	byKey := map[string]*analysis.FunctionComplexity{}
	for _, s := range cyclo {
		k := key(s.Pos.Filename, s.Pos.Line, s.FuncName)
		byKey[k] = &analysis.FunctionComplexity{Package: s.PkgName, Function: s.FuncName, File: s.Pos.Filename, Line: s.Pos.Line, Cyclomatic: s.Complexity}
	}
	for _, s := range cogn {
		k := key(s.Pos.Filename, s.Pos.Line, s.FuncName)
		if f := byKey[k]; f != nil {
			f.Cognitive = s.Complexity
		}
	}
	out := make([]analysis.FunctionComplexity, 0, len(byKey))
	for _, f := range byKey {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cyclomatic != out[j].Cyclomatic {
			return out[i].Cyclomatic > out[j].Cyclomatic
		}
		if out[i].Cognitive != out[j].Cognitive {
			return out[i].Cognitive > out[j].Cognitive
		}
		return out[i].File+out[i].Function < out[j].File+out[j].Function
	})
	return out[:min(len(out), MaxFunctions)]
}

// isTest recognises test files of common languages by name.
func isTest(path string) bool {
	base := filepath.Base(path)
	switch {
	case strings.HasSuffix(base, "_test.go"),
		strings.HasPrefix(base, "test_") && strings.HasSuffix(base, ".py"),
		strings.HasSuffix(base, "_test.py"),
		strings.Contains(base, ".test.") || strings.Contains(base, ".spec."),
		strings.HasSuffix(base, "Test.java") || strings.HasSuffix(base, "Tests.java"):
		return true
	}
	for _, part := range strings.Split(filepath.ToSlash(filepath.Dir(path)), "/") {
		if part == "test" || part == "tests" || part == "__tests__" || part == "spec" {
			return true
		}
	}
	return false
}

// isSource says whether a language is program code (not data or prose).
func isSource(lang string) bool {
	switch lang {
	case "Markdown", "JSON", "YAML", "TOML", "XML", "Plain Text", "License", "CSV", "SVG", "HTML", "CSS", "gitignore", "Makefile", "Dockerfile":
		return false
	}
	return true
}
