package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// storedTasksBy gathers pingmcp_tasks_stored by status.
func storedTasksBy(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "pingmcp_tasks_stored" {
			continue
		}
		for _, m := range f.GetMetric() {
			out[labelOf(m, "status")] = m.GetGauge().GetValue()
		}
	}
	return out
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// pingmcp_tasks_stored reports each status (zero included), counted at
// most once an interval; a failed count keeps the last figures and counts
// a store error.
func TestStoredTasks(t *testing.T) {
	counts, calls, fail := map[string]int{"working": 2, "completed": 5}, 0, false
	StoredTasks(func(context.Context) (map[string]int, error) {
		calls++
		if fail {
			return nil, errors.New("down")
		}
		return counts, nil
	}, []string{"working", "input_required", "completed"}, time.Hour)
	want := map[string]float64{"working": 2, "input_required": 0, "completed": 5}
	got := storedTasksBy(t)
	if len(got) != 3 || got["working"] != 2 || got["input_required"] != 0 || got["completed"] != 5 {
		t.Fatalf("pingmcp_tasks_stored: %v, want %v", got, want)
	}
	counts = map[string]int{"working": 9}
	if got := storedTasksBy(t); got["working"] != 2 || calls != 1 {
		t.Errorf("a second scrape within the interval: %v after %d counts, want the first figures from one count", got, calls)
	}
	// A failed count (the interval over) keeps the last figures.
	var e dto.Metric
	StoreErrors.WithLabelValues("count_tasks").Write(&e)
	before := e.GetCounter().GetValue()
	fail = true
	forceRecount(t)
	if got := storedTasksBy(t); got["working"] != 2 || calls != 2 {
		t.Errorf("after a failed count: %v after %d counts, want the last figures", got, calls)
	}
	StoreErrors.WithLabelValues("count_tasks").Write(&e)
	if d := e.GetCounter().GetValue() - before; d != 1 {
		t.Errorf("pingmcp_store_errors_total{kind=count_tasks} grew by %v, want 1", d)
	}
}

// forceRecount makes the registered StoredTasks count at the next scrape.
func forceRecount(t *testing.T) {
	t.Helper()
	stored.mu.Lock()
	stored.at = time.Time{}
	stored.mu.Unlock()
}
