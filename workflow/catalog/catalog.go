// Package catalog links in every workflow UltraMCP ships: importing it
// registers them all with package registry. Adding a workflow is its own
// package and one line here.
package catalog

import (
	_ "github.com/ultramcp/durable/workflow/codeanalysis"
	_ "github.com/ultramcp/durable/workflow/debate"
	_ "github.com/ultramcp/durable/workflow/fullanalysis"
)
