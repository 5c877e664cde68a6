// Package e2e holds the end-to-end tests: each starts a real restate-server
// on free loopback ports and the workflow service built from this checkout as
// its own process, drives them over HTTP or through the ultramcp binary, and
// stops them when the test ends. The only fake is the LLM endpoint
// (internal/llmtest), which speaks the OpenAI wire protocol.
package e2e
