// Package registry is where every workflow UltraMCP serves is declared,
// once (workflow.Definition): each workflow package registers a builder of
// its definitions when it is linked in (package catalog links them all),
// as database/sql drivers do. The service binds what All returns; the CLI,
// the API and the MCP server validate, start, follow and render through it.
package registry

import (
	"sort"
	"sync"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
)

// Deps are what the workflows are built from.
type Deps struct {
	Models    llm.Models
	Records   workflow.Records // nil keeps no records
	Checkouts *repo.Cache      // its Policy is what Validate applies; nil is repo.DefaultPolicy
	VulnDB    string
	// AnalysisSlots bounds the checkouts and scans at once; zero is the
	// default.
	AnalysisSlots int
}

// Policy is the repository policy of d.
func (d Deps) Policy() repo.Policy {
	if d.Checkouts == nil {
		return repo.DefaultPolicy
	}
	return d.Checkouts.Policy
}

// Builder builds a package's definitions from the dependencies.
type Builder func(Deps) []workflow.Definition

var (
	mu       sync.Mutex
	builders []Builder
)

// Register adds a package's builder; workflow packages call it from init.
func Register(b Builder) {
	mu.Lock()
	defer mu.Unlock()
	builders = append(builders, b)
}

// All returns every registered workflow, built from d, by name.
func All(d Deps) []workflow.Definition {
	mu.Lock()
	bs := append([]Builder(nil), builders...)
	mu.Unlock()
	var all []workflow.Definition
	for _, b := range bs {
		all = append(all, b(d)...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Lookup returns the definition of the workflow called name, built without
// dependencies: for following and rendering, which need none.
func Lookup(name string) (workflow.Definition, bool) {
	return Find(withoutDeps(), name)
}

// withoutDeps are built once, on first use: after every init registered.
var withoutDeps = sync.OnceValue(func() []workflow.Definition { return All(Deps{}) })

// Find returns the definition called name among defs.
func Find(defs []workflow.Definition, name string) (workflow.Definition, bool) {
	for _, def := range defs {
		if def.Name == name {
			return def, true
		}
	}
	return workflow.Definition{}, false
}
