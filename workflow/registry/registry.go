// Package registry is where every workflow UltraMCP serves is declared,
// once (workflow.Definition), in one explicit list: adding a workflow is its
// own package and one line in All. The service binds what All returns; the
// CLI, the API and the MCP server validate, start, follow and render
// through it.
package registry

import (
	"sort"
	"sync"

	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/codeanalysis"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

// All returns every workflow, built from d, by name.
func All(d workflow.Deps) []workflow.Definition {
	var all []workflow.Definition
	for _, build := range []func(workflow.Deps) []workflow.Definition{
		debate.Definitions,
		codeanalysis.Definitions,
		fullanalysis.Definitions,
	} {
		all = append(all, build(d)...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Lookup returns the definition of the workflow called name, built without
// dependencies: for following and rendering, which need none.
func Lookup(name string) (workflow.Definition, bool) {
	return Find(withoutDeps(), name)
}

var withoutDeps = sync.OnceValue(func() []workflow.Definition { return All(workflow.Deps{}) })

// Find returns the definition called name among defs.
func Find(defs []workflow.Definition, name string) (workflow.Definition, bool) {
	for _, def := range defs {
		if def.Name == name {
			return def, true
		}
	}
	return workflow.Definition{}, false
}
