// Command ultramcp runs and manages durable multi-agent LLM workflows on
// Restate. See `ultramcp --help`.
package main

import (
	"os"

	"github.com/ultramcp/durable/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
