package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds the process's metrics: ours, the Go runtime's and the
// process's. Collectors that read elsewhere at scrape time (the store's
// open workflows, Restate's deployments) are registered by whoever owns
// them.
var Registry = prometheus.NewRegistry()

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// The metrics. Labels are names the product chooses (workflow types, step
// names, providers, models, causes), never a user's text: a label cannot
// carry a prompt, a key or a found secret.
var (
	WorkflowsStarted = counter("ultramcp_workflows_started_total", "Workflow runs started, by type (counted where their first step runs).", "workflow")
	WorkflowsEnded   = counter("ultramcp_workflows_finished_total", "Workflow runs ended, by type and status (completed, failed, cancelled, partial).", "workflow", "status")
	WorkflowsRunning = gauge("ultramcp_workflow_bodies_running", "Workflow bodies executing in this service now (a suspended workflow runs none).", "workflow")
	StepSeconds      = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ultramcp_step_duration_seconds", Help: "Duration of the journaled steps that ran (replayed ones are not counted), by workflow and step.",
		Buckets: []float64{.001, .005, .02, .1, .5, 1, 2.5, 5, 15, 60, 300},
	}, []string{"workflow", "step"})
	ModelCalls  = counter("ultramcp_model_calls_total", "Model calls made, by provider, model and outcome (ok, error).", "provider", "model", "outcome")
	ModelTokens = counter("ultramcp_model_tokens_total", "Tokens of the model calls, by provider, model and direction (input, output).", "provider", "model", "direction")
	ModelCost   = counter("ultramcp_model_cost_usd_total", "Estimated cost of the model calls in US dollars, by provider and model.", "provider", "model")
	Retries     = counter("ultramcp_retries_total", "Retries of transient faults, by cause (model-unavailable, model-rate-limited, store, …).", "cause")
	StoreWrite  = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ultramcp_store_write_duration_seconds", Help: "Duration of one store transaction (a batch of writes).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .5, 2},
	})
	LimitWaiters = gauge("ultramcp_limit_waiters", "Calls of this service waiting for a permit of a provider key.", "key")
	StoreBatch   = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ultramcp_store_batch_size", Help: "Writes committed together in one store transaction.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
)

func init() {
	Registry.MustRegister(WorkflowsStarted, WorkflowsEnded, WorkflowsRunning, StepSeconds, ModelCalls, ModelTokens, ModelCost, Retries, StoreWrite, StoreBatch, LimitWaiters)
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// Since is the seconds since start, for a histogram.
func Since(start time.Time) float64 { return time.Since(start).Seconds() }

// MetricsHandler serves Registry in the Prometheus exposition format.
func MetricsHandler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}
