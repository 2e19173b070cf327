package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func (m *Metrics) newReloadCollectors() {
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "config_reloads_total",
		Help: "Configuration reloads by trigger (signal, watch) and result (success, failure).",
	}, []string{"trigger", "result"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "config_last_reload_successful",
		Help: "1 when the last reload attempt succeeded (or none was made), 0 when the running configuration is older than the file.",
	})
	m.reloadOK.Set(1)
	m.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "config_last_reload_success_timestamp_seconds",
		Help: "Unix time the running configuration was loaded (at start or by the last successful reload).",
	})
	m.reloadTime.SetToCurrentTime()
	m.revalidated = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "websocket_revalidation_closes_total",
		Help: "Open WebSockets closed by a reload because their credential was revoked, expired or no longer trusted.",
	})
}

// ObserveReload counts one reload attempt: trigger is "signal" or "watch",
// ok whether the new configuration was applied, closed how many open
// WebSockets its revalidation ended.
func (m *Metrics) ObserveReload(trigger string, ok bool, closed int, at time.Time) {
	if m == nil {
		return
	}
	result := "failure"
	if ok {
		result = "success"
		m.reloadOK.Set(1)
		m.reloadTime.Set(float64(at.UnixNano()) / 1e9)
	} else {
		m.reloadOK.Set(0)
	}
	m.reloads.WithLabelValues(trigger, result).Inc()
	m.revalidated.Add(float64(closed))
}
