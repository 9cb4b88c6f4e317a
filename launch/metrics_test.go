package launch

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// TestMetricsServerCapsConnections holds every connection slot with idle clients: a scrape then
// waits, and gets its answer once a slot is free.
func TestMetricsServerCapsConnections(t *testing.T) {
	addr, err := serveMetrics("127.0.0.1:0", newMetricsCollector(func() State { return State{Name: "cap"} }))
	if err != nil {
		t.Fatal(err)
	}
	var idle []net.Conn
	for i := 0; i < metricsConns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := client.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Fatalf("a scrape beside %d idle connections was served; want it to wait for a slot", metricsConns)
	}
	idle[0].Close()
	client.Timeout = 5 * time.Second
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape once a slot was free: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("scrape: %s", resp.Status)
	}
}
