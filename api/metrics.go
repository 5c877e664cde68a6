package api

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/telemetry"
)

// inFlight reports, at each scrape, the runs the engine has not finished:
// by workflow, and by the deployment (version of the service) each is
// pinned to. It asks Restate, so it counts every service's runs, not only
// this process's.
type inFlight struct {
	runs                 *runs.Service
	workflows, pinned, n *prometheus.Desc
}

func newInFlight(svc *runs.Service) *inFlight {
	return &inFlight{
		runs:      svc,
		workflows: prometheus.NewDesc("ultramcp_workflows_in_flight", "Workflow runs not finished (running, suspended, paused or retrying), by type, as Restate counts them.", []string{"workflow"}, nil),
		pinned:    prometheus.NewDesc("ultramcp_deployment_in_flight", "Workflow runs not finished, by the deployment they are pinned to (\"\" before their first attempt).", []string{"deployment"}, nil),
		n:         prometheus.NewDesc("ultramcp_deployments", "Deployments with unfinished runs pinned to them.", nil, nil),
	}
}

func (m *inFlight) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.workflows
	ch <- m.pinned
	ch <- m.n
}

func (m *inFlight) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := m.runs.InFlight(ctx)
	if err != nil {
		// The engine did not answer: no sample rather than a wrong zero.
		return
	}
	byWorkflow, byDeployment := map[string]int{}, map[string]int{}
	for _, d := range m.runs.Definitions() {
		byWorkflow[d.Name] = 0
	}
	for _, c := range counts {
		byWorkflow[c.Workflow] += c.Count
		byDeployment[c.Deployment] += c.Count
	}
	for wf, n := range byWorkflow {
		ch <- prometheus.MustNewConstMetric(m.workflows, prometheus.GaugeValue, float64(n), wf)
	}
	for dep, n := range byDeployment {
		ch <- prometheus.MustNewConstMetric(m.pinned, prometheus.GaugeValue, float64(n), dep)
	}
	ch <- prometheus.MustNewConstMetric(m.n, prometheus.GaugeValue, float64(len(byDeployment)))
}

// registerInFlight adds the engine's counts to the process's metrics once.
func registerInFlight(svc *runs.Service) {
	_ = telemetry.Registry.Register(newInFlight(svc)) // a second API in the process keeps the first's
}
