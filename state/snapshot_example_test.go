package state_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pingmcp/pingmcp/state"
)

// An activation takes an epoch and writes with it; once a newer activation
// of the session exists, the older one's writes are fenced.
func ExampleSnapshots() {
	ctx := context.Background()
	var snaps state.Snapshots = &state.MemorySnapshots{}

	// A new session: create it, as an initialize does.
	first, snap, _ := snaps.Activate(ctx, "s1", true)
	fmt.Printf("epoch %d, snapshot %q\n", first, snap)
	fmt.Println("save:", snaps.Save(ctx, "s1", first, []byte("v1"), time.Hour))

	// The session is activated again (its actor moved to another node):
	// the new activation finds what the first one saved.
	second, snap, _ := snaps.Activate(ctx, "s1", false)
	fmt.Printf("epoch %d, snapshot %q\n", second, snap)

	// The first activation may no longer write.
	err := snaps.Save(ctx, "s1", first, []byte("stale"), time.Hour)
	fmt.Println("stale save fenced:", errors.Is(err, state.ErrFenced))
	fmt.Println("save:", snaps.Save(ctx, "s1", second, []byte("v2"), time.Hour))

	snap, _ = snaps.Get(ctx, "s1")
	fmt.Printf("stored %q\n", snap)
	// Output:
	// epoch 1, snapshot ""
	// save: <nil>
	// epoch 2, snapshot "v1"
	// stale save fenced: true
	// save: <nil>
	// stored "v2"
}

// Without create, Activate of a session that has no snapshot activates
// nothing: epoch 0, and nothing is written.
func ExampleSnapshots_unknownSession() {
	ctx := context.Background()
	snaps := &state.MemorySnapshots{}
	epoch, snap, err := snaps.Activate(ctx, "unknown", false)
	n, _ := snaps.Count(ctx)
	fmt.Println(epoch, snap == nil, err, n)
	// Output:
	// 0 true <nil> 0
}
