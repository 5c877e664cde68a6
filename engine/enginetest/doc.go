// Package enginetest is the conformance suite of the engines: the same
// workflow bodies run on the direct engine and on Restate (a real
// restate-server, the body served in-process), and must behave alike —
// step results kept and replayed, retries and the kind of a final error,
// RunAll's concurrency and independence, durable sleep, a signal awaited
// with a timeout, cancellation. Workflow logic written against package
// engine can then trust either engine to run it the same way.
package enginetest
