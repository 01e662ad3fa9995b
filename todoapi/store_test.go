package todoapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// testStore is the contract of Store, run against every implementation.
// newStore returns an empty store.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	created := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	todo := func(text string, minute int) Todo {
		return Todo{ID: newID(), Text: text, CreatedAt: created.Add(time.Duration(minute) * time.Minute)}
	}
	mustCreate := func(t *testing.T, s Store, user string, td Todo) []Todo {
		t.Helper()
		list, err := s.Create(ctx, user, td, 100)
		if err != nil {
			t.Fatalf("create %q for %q: %v", td.Text, user, err)
		}
		return list
	}
	mustList := func(t *testing.T, s Store, user string) []Todo {
		t.Helper()
		list, err := s.List(ctx, user)
		if err != nil {
			t.Fatalf("list %q: %v", user, err)
		}
		sortTodos(list)
		return list
	}
	// same compares lists in answer order, times by instant.
	same := func(t *testing.T, what string, got []Todo, want ...Todo) {
		t.Helper()
		got = slices.Clone(got)
		sortTodos(got)
		want = slices.Clone(want)
		sortTodos(want)
		ok := len(got) == len(want)
		for i := 0; ok && i < len(got); i++ {
			g, w := got[i], want[i]
			ok = g.ID == w.ID && g.Text == w.Text && g.Completed == w.Completed && g.CreatedAt.Equal(w.CreatedAt)
		}
		if !ok {
			t.Errorf("%s: got %+v\nwant %+v", what, got, want)
		}
	}

	t.Run("unknown user", func(t *testing.T) {
		s := newStore(t)
		if list := mustList(t, s, "nobody"); len(list) != 0 {
			t.Errorf("list %+v", list)
		}
		if _, err := s.SetCompleted(ctx, "nobody", newID(), true); !errors.Is(err, ErrNotFound) {
			t.Errorf("set completed: %v, want ErrNotFound", err)
		}
		if _, err := s.Delete(ctx, "nobody", newID()); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete: %v, want ErrNotFound", err)
		}
	})

	t.Run("round trip", func(t *testing.T) {
		s := newStore(t)
		// Text that JSON and Lua's cjson must both carry unchanged.
		tricky := todo(`quotes " \ / <b>&amp;</b> café 😀 👩‍💻 `+"\u00a0"+`\u0041 end`, 0)
		plain := todo("plain", 1)
		same(t, "create answer", mustCreate(t, s, "u", tricky), tricky)
		same(t, "create answer", mustCreate(t, s, "u", plain), tricky, plain)
		same(t, "list", mustList(t, s, "u"), tricky, plain)

		list, err := s.SetCompleted(ctx, "u", tricky.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		tricky.Completed = true
		same(t, "complete answer", list, tricky, plain)
		same(t, "list after complete", mustList(t, s, "u"), tricky, plain)
		list, err = s.SetCompleted(ctx, "u", tricky.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		tricky.Completed = false
		same(t, "reopen answer", list, tricky, plain)

		list, err = s.Delete(ctx, "u", tricky.ID)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "delete answer", list, plain)
		if _, err := s.Delete(ctx, "u", tricky.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		if _, err := s.SetCompleted(ctx, "u", tricky.ID, true); !errors.Is(err, ErrNotFound) {
			t.Errorf("complete a deleted todo: %v, want ErrNotFound", err)
		}
		list, err = s.Delete(ctx, "u", plain.ID)
		if err != nil || len(list) != 0 {
			t.Errorf("delete the last: %+v, %v", list, err)
		}
		same(t, "emptied", mustList(t, s, "u"))
	})

	t.Run("duplicate id", func(t *testing.T) {
		s := newStore(t)
		first := todo("first", 0)
		mustCreate(t, s, "u", first)
		again := first
		again.Text = "impostor"
		_, err := s.Create(ctx, "u", again, 100)
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrListFull) {
			t.Errorf("create with a taken id: %v, want a plain error", err)
		}
		same(t, "list", mustList(t, s, "u"), first)
	})

	t.Run("bound", func(t *testing.T) {
		s := newStore(t)
		a, b := todo("a", 0), todo("b", 1)
		for _, td := range []Todo{a, b} {
			if _, err := s.Create(ctx, "u", td, 2); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Create(ctx, "u", todo("c", 2), 2); !errors.Is(err, ErrListFull) {
			t.Errorf("third create: %v, want ErrListFull", err)
		}
		same(t, "list", mustList(t, s, "u"), a, b)
		if _, err := s.Create(ctx, "other", todo("c", 2), 2); err != nil {
			t.Errorf("another user's list is not full: %v", err)
		}
	})

	t.Run("users isolated", func(t *testing.T) {
		s := newStore(t)
		// Keys that would collide or glob if used raw in key names.
		users := []string{"alice", "alice:", "alice*", "*", "", "user:alice", "a\x00b", "a", "b", "todoapi:user:alice", string(make([]byte, 1000))}
		mine := map[string]Todo{}
		for i, u := range users {
			mine[u] = todo("todo of "+fmt.Sprintf("%q", u), i)
			mustCreate(t, s, u, mine[u])
		}
		for _, u := range users {
			same(t, fmt.Sprintf("list of %q", u), mustList(t, s, u), mine[u])
			for _, other := range users {
				if other == u {
					continue
				}
				if _, err := s.SetCompleted(ctx, other, mine[u].ID, true); !errors.Is(err, ErrNotFound) {
					t.Fatalf("%q completed %q's todo: %v", other, u, err)
				}
				if _, err := s.Delete(ctx, other, mine[u].ID); !errors.Is(err, ErrNotFound) {
					t.Fatalf("%q deleted %q's todo: %v", other, u, err)
				}
			}
		}
		for _, u := range users {
			same(t, fmt.Sprintf("list of %q after the others tried", u), mustList(t, s, u), mine[u])
		}
	})

	t.Run("bound holds under concurrency", func(t *testing.T) {
		s := newStore(t)
		const tries, max = 100, 50
		var wg sync.WaitGroup
		errs := make([]error, tries)
		for i := range tries {
			wg.Go(func() {
				_, errs[i] = s.Create(ctx, "u", todo(fmt.Sprint(i), i), max)
			})
		}
		wg.Wait()
		ok, full := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrListFull):
				full++
			default:
				t.Errorf("create: %v", err)
			}
		}
		if ok != max || full != tries-max {
			t.Errorf("%d created and %d refused, want %d and %d", ok, full, max, tries-max)
		}
		if n := len(mustList(t, s, "u")); n != max {
			t.Errorf("%d stored, want %d", n, max)
		}
	})

	t.Run("no concurrent write is lost", func(t *testing.T) {
		s := newStore(t)
		const n = 60
		var old []Todo
		for i := range n {
			td := todo(fmt.Sprint("old ", i), i)
			mustCreate(t, s, "u", td)
			old = append(old, td)
		}
		// At once: complete the even ones, delete the odd ones, add as many new.
		var wg sync.WaitGroup
		var fresh [n]Todo
		for i := range n {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					_, err = s.SetCompleted(ctx, "u", old[i].ID, true)
				} else {
					_, err = s.Delete(ctx, "u", old[i].ID)
				}
				if err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				fresh[i] = todo(fmt.Sprint("new ", i), n+i)
				if _, err := s.Create(ctx, "u", fresh[i], 1000); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		var want []Todo
		for i, td := range old {
			if i%2 == 0 {
				td.Completed = true
				want = append(want, td)
			}
		}
		want = append(want, fresh[:]...)
		same(t, "list", mustList(t, s, "u"), want...)
	})
}

func TestMemoryStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemoryStore() })
}
