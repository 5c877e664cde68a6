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
	// each provider key's limit use
	limitInFlight, limitWaiting, limitAllowed, limitRequests, limitTokens, limitThrottled *prometheus.Desc
}

func newInFlight(svc *runs.Service) *inFlight {
	return &inFlight{
		runs:      svc,
		workflows: prometheus.NewDesc("ultramcp_workflows_in_flight", "Workflow runs not finished (running, suspended, paused or retrying), by type, as Restate counts them.", []string{"workflow"}, nil),
		pinned:    prometheus.NewDesc("ultramcp_deployment_in_flight", "Workflow runs not finished, by the deployment they are pinned to (\"\" before their first attempt).", []string{"deployment"}, nil),
		n:         prometheus.NewDesc("ultramcp_deployments", "Deployments with unfinished runs pinned to them.", nil, nil),

		limitInFlight:  prometheus.NewDesc("ultramcp_limit_in_flight", "Calls of a provider key in flight, in every service on the store.", []string{"key"}, nil),
		limitWaiting:   prometheus.NewDesc("ultramcp_limit_waiting", "Calls waiting for a permit of a provider key, in every service on the store.", []string{"key"}, nil),
		limitAllowed:   prometheus.NewDesc("ultramcp_limit_allowed", "Calls at once a provider key now allows (its concurrency, lowered by 429s).", []string{"key"}, nil),
		limitRequests:  prometheus.NewDesc("ultramcp_limit_requests_last_minute", "Calls to a provider key in the last minute.", []string{"key"}, nil),
		limitTokens:    prometheus.NewDesc("ultramcp_limit_tokens_last_minute", "Tokens of the calls to a provider key in the last minute.", []string{"key"}, nil),
		limitThrottled: prometheus.NewDesc("ultramcp_limit_throttled_last_minute", "429s a provider key answered in the last minute.", []string{"key"}, nil),
	}
}

func (m *inFlight) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.workflows, m.pinned, m.n, m.limitInFlight, m.limitWaiting, m.limitAllowed, m.limitRequests, m.limitTokens, m.limitThrottled} {
		ch <- d
	}
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
	m.collectLimits(ctx, ch)
}

// collectLimits reports each provider key's use of its limits, across
// every service on the store.
func (m *inFlight) collectLimits(ctx context.Context, ch chan<- prometheus.Metric) {
	us, err := m.runs.Limits(ctx)
	if err != nil {
		return
	}
	for _, u := range us {
		for desc, v := range map[*prometheus.Desc]int{m.limitInFlight: u.InFlight, m.limitWaiting: u.Waiting, m.limitAllowed: u.Allowed, m.limitRequests: u.Requests, m.limitTokens: u.Tokens, m.limitThrottled: u.Throttled} {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v), u.Key)
		}
	}
}

// registerInFlight adds the engine's counts to the process's metrics once.
func registerInFlight(svc *runs.Service) {
	_ = telemetry.Registry.Register(newInFlight(svc)) // a second API in the process keeps the first's
}
