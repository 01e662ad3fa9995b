package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// A session cannot grow its snapshot beyond the bound, one subscription at
// a time or at once: the change that would is refused, the record and the
// snapshot written stay as they were, and the refusal is counted.
func TestSnapshotBound(t *testing.T) {
	ctx := context.Background()
	snaps := &state.MemorySnapshots{}
	d := &state.Stores{Snapshots: snaps, Events: state.NewMemoryEvents(snaps), Sealer: state.NewProcessSealer(), MaxSnapshotBytes: 4096}
	epoch, _, _ := snaps.Activate(ctx, "s", true)
	p := newPersister(d, "s", epoch, newSnapshot(nil), slog.New(slog.NewTextHandler(io.Discard, nil)), func() {})
	defer p.close()
	refused := countOf(t, metrics.Limited.WithLabelValues("snapshot_bytes"))

	var kept []string
	var err error
	for i := range 1000 {
		uri := fmt.Sprintf("test://resource/%04d/%s", i, strings.Repeat("x", 100))
		if err = p.update(true, func(r *state.Snapshot) { r.Subscriptions = append(r.Subscriptions, uri) }); err != nil {
			break
		}
		kept = append(kept, uri)
	}
	var big *SnapshotTooLarge
	if !errors.As(err, &big) || big.Limit != 4096 || big.Size <= 4096 {
		t.Fatalf("subscriptions beyond the bound: %v; want *SnapshotTooLarge over 4096", err)
	}
	if len(kept) == 0 || len(kept) > 40 {
		t.Fatalf("%d subscriptions of ~130 bytes kept within 4096 bytes", len(kept))
	}
	if got := p.snapshot().Subscriptions; !slices.Equal(got, kept) {
		t.Errorf("record after the refusal has %d subscriptions, want the %d accepted", len(got), len(kept))
	}
	stored, _ := snaps.Get(ctx, "s")
	rec, derr := state.DecodeSnapshot(stored)
	if derr != nil || len(stored) > 4096 || !slices.Equal(rec.Subscriptions, kept) {
		t.Errorf("stored snapshot: %d bytes, %d subscriptions, %v; want the last good one", len(stored), len(rec.Subscriptions), derr)
	}
	// One change that is too large at once is refused the same way, and
	// fits says so without changing anything.
	huge := func(r *state.Snapshot) {
		r.Initialize = []byte(`{"capabilities":{"experimental":{"x":"` + strings.Repeat("y", 8000) + `"}}}`)
	}
	if err := p.fits(huge); !errors.As(err, &big) {
		t.Errorf("fits(too large) = %v", err)
	}
	if err := p.update(false, huge); !errors.As(err, &big) {
		t.Errorf("update(too large) = %v", err)
	}
	if p.snapshot().Initialize != nil {
		t.Error("a refused change was recorded")
	}
	// Shrinking is never refused, nor a refresh.
	if err := p.update(true, func(r *state.Snapshot) { r.Subscriptions = r.Subscriptions[:1] }); err != nil {
		t.Errorf("unsubscribing: %v", err)
	}
	if err := p.update(true, nil); err != nil {
		t.Errorf("refresh: %v", err)
	}
	if n := countOf(t, metrics.Limited.WithLabelValues("snapshot_bytes")) - refused; n < 3 {
		t.Errorf("refusals counted: %v, want at least 3", n)
	}
}

// countOf reads a counter.
func countOf(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
