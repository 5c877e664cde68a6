// Package registry lists every workflow UltraMCP serves, each declared once
// in its own package (workflow.Definition): the service binds them, the CLI
// follows and renders them through it. Adding a workflow is one new package
// and one line in All.
package registry

import (
	"sync"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/codeanalysis"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

// Deps are what the workflows are built from.
type Deps struct {
	Models    llm.Models
	Records   workflow.Records // nil keeps no records
	Checkouts *repo.Cache
	VulnDB    string
	// AnalysisSlots bounds the checkouts and scans at once; zero is the
	// default.
	AnalysisSlots int
}

// All returns every workflow, built from d.
func All(d Deps) []workflow.Definition {
	a := &codeanalysis.Analyzer{Cache: d.Checkouts, Models: d.Models, Records: d.Records, VulnDB: d.VulnDB}
	if d.AnalysisSlots > 0 {
		a.Slots = make(chan struct{}, d.AnalysisSlots)
	}
	var all []workflow.Definition
	all = append(all, debate.Definition(&debate.Debate{Models: d.Models, Records: d.Records}))
	all = append(all, a.Definitions()...)
	all = append(all, fullanalysis.Definition(&fullanalysis.FullAnalysis{Models: d.Models, Records: d.Records}))
	return all
}

// definitions are the workflows without dependencies, built once: what
// Lookup serves.
var definitions = sync.OnceValue(func() []workflow.Definition { return All(Deps{}) })

// Lookup returns the definition of the workflow called name, for what
// needs no dependencies: following and rendering.
func Lookup(name string) (workflow.Definition, bool) {
	for _, def := range definitions() {
		if def.Name == name {
			return def, true
		}
	}
	return workflow.Definition{}, false
}
