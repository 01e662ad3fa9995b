package actors

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/state"
)

// A GET without Last-Event-ID on the session's next activation (after a
// passivation on this node, or on another node) is not replayed what a GET
// of an earlier activation was written: the 2025-11-25 transport forbids
// replaying on one stream what another delivered, and a client would see
// each notification twice. What no GET carried, on either activation, is
// delivered, and so is what comes while it is open. It failed before the
// standalone stream's store record kept what was sent (the mark was this
// activation's alone: the new one replayed every event kept).
func TestStandaloneGETAfterMoveReplaysNothingSent(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		for _, move := range []string{"same node", "another node"} {
			t.Run(kind+"/"+move, func(t *testing.T) {
				d := standaloneStores(t, kind)
				system, props := testSessions(t, Config{Stores: d})
				root := system.Root
				spawn := func(root *actor.RootContext, props *actor.Props) *actor.PID {
					return root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
				}
				pid := spawn(root, props)
				p := principal("tok-a")
				if body := postInitialize(t, root, pid, p, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
					t.Fatalf("initialize: %s", body)
				}
				if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
					t.Fatalf("initialized: %d", status)
				}

				// Activation 1: a GET is written two notifications.
				a := openGET(t, root, pid, p)
				if a.head.GetStatus() != http.StatusOK {
					t.Fatalf("GET on activation 1: %d %s", a.head.GetStatus(), a.head.GetBody())
				}
				var sent []int
				for i := 1; i <= 2; i++ {
					triggerPromptChange(t, root, pid, p, i)
					got := a.standaloneIDs(t, 1)
					sent = append(sent, got...)
				}
				a.close(t, root, pid)
				last := sent[len(sent)-1]
				// One no GET carried, on activation 1.
				triggerPromptChange(t, root, pid, p, 3)
				awaitStandaloneStored(t, d, last+2)
				awaitMarked(t, d, last)

				// The session moves.
				if err := root.StopFuture(pid).Wait(); err != nil {
					t.Fatal(err)
				}
				if move == "another node" {
					system, props = testSessions(t, Config{Stores: d})
					root = system.Root
				}
				pid = spawn(root, props)
				// One no GET carried, on activation 2 (which it activates).
				triggerPromptChange(t, root, pid, p, 4)
				awaitStandaloneStored(t, d, last+3)

				b := openGET(t, root, pid, p)
				if b.head.GetStatus() != http.StatusOK {
					t.Fatalf("GET on activation 2: %d %s", b.head.GetStatus(), b.head.GetBody())
				}
				replayed := b.standaloneIDs(t, 2)
				// One while it is open.
				triggerPromptChange(t, root, pid, p, 5)
				live := b.standaloneIDs(t, 1)
				got := append(replayed, live...)
				if want := []int{last + 1, last + 2, last + 3}; !slices.Equal(got, want) {
					t.Errorf("GET on activation 2 got the standalone events %v, want %v (activation 1's GET was written %v)", got, want, sent)
				}
				b.close(t, root, pid)
			})
		}
	}
}

// standaloneStores are fresh stores of kind "memory" or "redis".
func standaloneStores(t *testing.T, kind string) *state.Stores {
	if kind == "memory" {
		return state.MemoryStores(time.Hour)
	}
	return redisStores(t, state.EventOptions{})
}

var standaloneEventID = regexp.MustCompile(`(?m)^id: _(\d+)\r?$`)

// standaloneIDs reads g's bodies until n events of the standalone stream
// came, and returns their indexes; it fails the test if more than n came
// together, or fewer within forwardTimeout.
func (g *getStream) standaloneIDs(t *testing.T, n int) []int {
	t.Helper()
	var got []int
	deadline := time.After(forwardTimeout)
	for len(got) < n {
		select {
		case b, ok := <-g.bodies:
			if !ok {
				t.Fatalf("the GET ended after the events %v, want %d", got, n)
			}
			for _, m := range standaloneEventID.FindAllStringSubmatch(b, -1) {
				i, _ := strconv.Atoi(m[1])
				got = append(got, i)
			}
		case <-deadline:
			t.Fatalf("the GET got the events %v, want %d", got, n)
		}
	}
	if len(got) > n {
		t.Errorf("the GET got the events %v at once, want %d", got, n)
	}
	return got
}

// awaitMarked waits for the store to mark the standalone stream's events
// up to index sent: the mark is written behind the GET.
func awaitMarked(t *testing.T, d *state.Stores, index int) {
	t.Helper()
	for deadline := time.Now().Add(forwardTimeout); ; time.Sleep(5 * time.Millisecond) {
		if _, _, sent, err := d.Events.OpenLast(t.Context(), fuzzSession, "", 0); err == nil && sent >= index {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standalone stream's events up to %d were never marked sent", index)
		}
	}
}
