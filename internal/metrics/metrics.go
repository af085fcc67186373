// Package metrics holds the Prometheus collectors shared by the component and
// the adapter runner. It is a leaf: it imports neither.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Directions.
const (
	Out = "out" // XMPP → network
	In  = "in"  // network → XMPP
)

// Results of a message at each stage.
const (
	Queued    = "queued"    // stored on the bus
	Duplicate = "duplicate" // already stored (redelivery); not stored twice
	Sent      = "sent"      // accepted by the network (out) or written to the XMPP stream (in)
	Rejected  = "rejected"  // refused at the edge, sender told
	Failed    = "failed"    // gave up, sender told
	Retried   = "retried"   // transient failure, will be tried again
	Ignored   = "ignored"   // not a network message (chat state, receipt-only, empty)
)

// Metrics is one process' set of collectors.
type Metrics struct {
	Registry   *prometheus.Registry
	Messages   *prometheus.CounterVec // gateway, direction, result
	Connected  *prometheus.GaugeVec   // gateway: 1 when the component stream is authenticated
	Active     *prometheus.GaugeVec   // gateway: 1 when this process is the gateway's active component (not a standby)
	Reconnects *prometheus.CounterVec // gateway: stream (re)connection attempts that failed
	Pushes     *prometheus.CounterVec // gateway, service, result: push gateways (adapter push)
}

// New creates and registers the collectors, including Go runtime and process
// metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_messages_total",
			Help: "Messages by gateway, direction (out: XMPP to network, in: network to XMPP) and result.",
		}, []string{"gateway", "direction", "result"}),
		Connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xmppgw_component_connected",
			Help: "1 while the gateway's XEP-0114 stream is authenticated, else 0.",
		}, []string{"gateway"}),
		Active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xmppgw_component_active",
			Help: "1 while this process is the gateway's active component (it holds the component lease, or needs none), 0 while it is a standby.",
		}, []string{"gateway"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_component_connect_failures_total",
			Help: "Failed attempts to open or authenticate the component stream.",
		}, []string{"gateway"}),
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_pushes_total",
			Help: "Push notifications of push gateways by service (unifiedpush, fcm, apns; none for a publish to an unknown node) and result (accepted, refused, sent, limited, retried, failed, gone, unregistered).",
		}, []string{"gateway", "service", "result"}),
	}
	m.Registry.MustRegister(m.Messages, m.Connected, m.Active, m.Reconnects, m.Pushes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Message counts one message outcome.
func (m *Metrics) Message(gateway, direction, result string) {
	if m == nil {
		return
	}
	m.Messages.WithLabelValues(gateway, direction, result).Inc()
}

// Push counts one push notification outcome.
func (m *Metrics) Push(gateway, service, result string) {
	if m == nil {
		return
	}
	m.Pushes.WithLabelValues(gateway, service, result).Inc()
}

// SetConnected records the component stream state.
func (m *Metrics) SetConnected(gateway string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.Connected.WithLabelValues(gateway).Set(v)
}

// SetActive records whether this process is the gateway's active component.
func (m *Metrics) SetActive(gateway string, active bool) {
	if m == nil {
		return
	}
	v := 0.0
	if active {
		v = 1
	}
	m.Active.WithLabelValues(gateway).Set(v)
}

// ConnectFailed counts a failed connection attempt.
func (m *Metrics) ConnectFailed(gateway string) {
	if m == nil {
		return
	}
	m.Reconnects.WithLabelValues(gateway).Inc()
}

// PendingSample is one consumer's backlog.
type PendingSample struct {
	Gateway   string
	Direction string
	Waiting   uint64 // not yet delivered to a consumer
	Unacked   uint64 // delivered, not yet acknowledged
}

// RegisterPending adds a gauge family read at scrape time from fn.
func (m *Metrics) RegisterPending(fn func(ctx context.Context) []PendingSample) {
	m.Registry.MustRegister(&pendingCollector{fn: fn})
}

var pendingDesc = prometheus.NewDesc("xmppgw_bus_pending_messages",
	"Messages on the bus not yet handled, by gateway, direction and state (waiting: not delivered to a consumer; unacked: in progress).",
	[]string{"gateway", "direction", "state"}, nil)

type pendingCollector struct {
	fn func(ctx context.Context) []PendingSample
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pendingDesc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range c.fn(ctx) {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Waiting), s.Gateway, s.Direction, "waiting")
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Unacked), s.Gateway, s.Direction, "unacked")
	}
}
