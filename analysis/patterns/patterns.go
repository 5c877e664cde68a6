// Package patterns describes how a checkout is built and laid out: its
// languages, frameworks (from dependency manifests), build systems, top
// level layers, and the import structure between Go packages. It reads
// files only; the LLM summary of what it finds is a workflow step.
package patterns

import (
	"context"
	"encoding/json"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/fault"
)

// maxManifest is the largest manifest or Go file read.
const maxManifest = 1 << 20

// buildFiles maps a file name to the build system it reveals.
var buildFiles = map[string]string{
	"go.mod": "Go modules", "Makefile": "Make", "package.json": "npm", "Cargo.toml": "Cargo",
	"pom.xml": "Maven", "build.gradle": "Gradle", "build.gradle.kts": "Gradle", "CMakeLists.txt": "CMake",
	"setup.py": "setuptools", "pyproject.toml": "Python (pyproject)", "requirements.txt": "pip",
	"Dockerfile": "Docker", "docker-compose.yml": "Docker Compose", "BUILD.bazel": "Bazel", "WORKSPACE": "Bazel",
	"Gemfile": "Bundler", "composer.json": "Composer",
}

// frameworks maps a dependency name (or module path prefix) to a framework.
var frameworks = map[string]string{
	"github.com/gin-gonic/gin": "Gin", "github.com/labstack/echo": "Echo", "github.com/go-chi/chi": "chi",
	"github.com/gofiber/fiber": "Fiber", "google.golang.org/grpc": "gRPC", "github.com/spf13/cobra": "Cobra",
	"github.com/restatedev/sdk-go": "Restate", "gorm.io/gorm": "GORM", "github.com/gorilla/mux": "Gorilla mux",
	"react": "React", "vue": "Vue", "next": "Next.js", "express": "Express", "@angular/core": "Angular",
	"svelte": "Svelte", "fastify": "Fastify", "@nestjs/core": "NestJS",
	"django": "Django", "flask": "Flask", "fastapi": "FastAPI",
	"spring-boot": "Spring Boot", "tokio": "Tokio", "actix-web": "Actix", "rails": "Rails",
}

// Detect describes the tree at dir.
func Detect(ctx context.Context, dir string, languages []string) (*analysis.Patterns, error) {
	p := &analysis.Patterns{Languages: languages}
	builds, fws, layers := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var goFiles []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := d.Name()
		if d.IsDir() {
			if name == ".git" || name == "node_modules" || name == "vendor" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // links, FIFOs, devices: never opened
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if b, ok := buildFiles[name]; ok {
			builds[b] = true
			for _, fw := range manifestFrameworks(path, name) {
				fws[fw] = true
			}
		}
		if top, _, nested := strings.Cut(rel, "/"); nested && isCode(name) {
			layers[top] = true
		}
		if strings.HasSuffix(name, ".go") {
			goFiles = append(goFiles, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "detect patterns")
	}
	var imported map[string]bool
	p.Dependencies, imported = goImports(dir, goFiles)
	for path := range imported {
		for prefix, fw := range frameworks {
			if strings.Contains(prefix, ".") && (path == prefix || strings.HasPrefix(path, prefix+"/")) {
				fws[fw] = true
			}
		}
	}
	p.BuildSystems, p.Frameworks, p.Layers = keys(builds), keys(fws), keys(layers)
	return p, nil
}

func isCode(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".go", ".py", ".js", ".ts", ".tsx", ".jsx", ".rs", ".java", ".kt", ".rb", ".php", ".c", ".h", ".cpp", ".cs", ".swift", ".scala", ".sh":
		return true
	}
	return false
}

// manifestFrameworks reads the dependencies a manifest names.
func manifestFrameworks(path, name string) []string {
	b, err := analysis.ReadFile(path, maxManifest)
	if err != nil {
		return nil
	}
	var deps []string
	switch name {
	case "go.mod":
		// Go frameworks come from the imports the code has (goImports);
		// a go.mod also requires what its dependencies need.
	case "package.json":
		var pkg struct {
			Dependencies    map[string]any `json:"dependencies"`
			DevDependencies map[string]any `json:"devDependencies"`
		}
		if json.Unmarshal(b, &pkg) == nil {
			for d := range pkg.Dependencies {
				deps = append(deps, d)
			}
			for d := range pkg.DevDependencies {
				deps = append(deps, d)
			}
		}
	case "requirements.txt", "pyproject.toml", "Cargo.toml", "pom.xml", "build.gradle", "Gemfile":
		text := strings.ToLower(string(b))
		for dep := range frameworks {
			if !strings.Contains(dep, "/") && containsWord(text, dep) {
				deps = append(deps, dep)
			}
		}
	}
	var out []string
	for _, d := range deps {
		for prefix, fw := range frameworks {
			if d == prefix || strings.HasPrefix(d, prefix+"/") {
				out = append(out, fw)
			}
		}
	}
	return out
}

func containsWord(text, w string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		before := start == 0 || !isWordByte(text[start-1])
		after := end == len(text) || !isWordByte(text[end])
		if before && after {
			return true
		}
		i = end
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

// goImports returns the imports between directories of the module at dir,
// and every import path the Go files have.
func goImports(dir string, files []string) ([]analysis.Dependency, map[string]bool) {
	modPath := ""
	if b, err := analysis.ReadFile(filepath.Join(dir, "go.mod"), maxManifest); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "module" {
				modPath = f[1]
			}
		}
	}
	imported := map[string]bool{}
	seen := map[analysis.Dependency]bool{}
	fset := token.NewFileSet()
	for _, rel := range files {
		src, err := analysis.ReadFile(filepath.Join(dir, rel), maxManifest)
		if err != nil {
			continue
		}
		f, err := parser.ParseFile(fset, rel, src, parser.ImportsOnly)
		if err != nil {
			continue
		}
		from := filepath.ToSlash(filepath.Dir(rel))
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			imported[path] = true
			if modPath == "" || path != modPath && !strings.HasPrefix(path, modPath+"/") {
				continue
			}
			to := strings.TrimPrefix(strings.TrimPrefix(path, modPath), "/")
			if to == "" {
				to = "."
			}
			if to != from {
				seen[analysis.Dependency{From: from, To: to}] = true
			}
		}
	}
	out := make([]analysis.Dependency, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].To < out[j].To
	})
	return out, imported
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
