package devidp

import (
	"errors"
	"testing"
	"time"
)

// A refresh under way while the user's grants are revoked (it spent its
// refresh token before, adds the new tokens after) does not bring the
// grant back: its new access and refresh tokens are refused. A login after
// the revocation, and a client's own token, are not affected.
func TestRevokeUserDuringRefresh(t *testing.T) {
	st := newState(10)
	login := time.Now()
	g := refreshGrant{grant: "g1", clientID: "c", subject: "alice", resource: "r", authTime: login, loginSeq: st.loginSeq(), expires: login.Add(time.Hour)}
	if err := st.addRefresh("old", g, login); err != nil {
		t.Fatal(err)
	}
	// The refresh: peek, spend the old token ...
	now := login.Add(time.Second)
	if _, ok := st.peekRefresh("old", now); !ok || !st.consumeRefresh("old", now) {
		t.Fatal("refresh token not usable")
	}
	// ... the revocation runs, finding nothing of alice's ...
	revoked := now.Add(time.Millisecond)
	st.revokeUser("alice", revoked)
	// ... then the refresh adds its new tokens.
	after := revoked.Add(time.Millisecond)
	if err := st.addLive("jti1", liveToken{expires: after.Add(time.Hour), grant: "g1", loginSeq: g.loginSeq, subject: "alice", clientID: "c"}, after); !errors.Is(err, errGrantRevoked) {
		t.Errorf("access token of the revoked grant added after the revocation: %v", err)
	}
	if _, ok := st.isLive("jti1", after); ok {
		t.Error("the access token of the revoked grant is live")
	}
	if err := st.addRefresh("new", g, after); !errors.Is(err, errGrantRevoked) {
		t.Errorf("refresh token of the revoked grant added after the revocation: %v", err)
	}
	if _, ok := st.peekRefresh("new", after); ok {
		t.Error("the refresh token of the revoked grant works")
	}

	relogin := refreshGrant{grant: "g2", clientID: "c", subject: "alice", resource: "r", authTime: after, loginSeq: st.loginSeq(), expires: after.Add(time.Hour)}
	if err := st.addRefresh("relogin", relogin, after); err != nil {
		t.Errorf("a login after the revocation: %v", err)
	}
	if err := st.addLive("own", liveToken{expires: after.Add(time.Hour), subject: "alice", clientID: "alice"}, after); err != nil {
		t.Errorf("a client's own token (no grant): %v", err)
	}
	if err := st.addLive("bob", liveToken{expires: after.Add(time.Hour), grant: "g3", loginSeq: g.loginSeq, subject: "bob", clientID: "c"}, after); err != nil {
		t.Errorf("another user's token: %v", err)
	}
	// The revocation's time is forgotten once no request can be under way.
	st.sweepLocked(revoked.Add(revokedUserTTL+time.Second), true)
	if len(st.revokedUsers) != 0 {
		t.Errorf("revocations kept after %v: %v", revokedUserTTL, st.revokedUsers)
	}
}

// A grant revoked while a refresh of it is under way (its token spent,
// its new tokens not added yet) gets none of them added after; a refresh
// that issued nothing gives its token back, unless its grant was revoked.
func TestRevokeGrantDuringRefresh(t *testing.T) {
	st := newState(10)
	now := time.Now()
	g := refreshGrant{grant: "g1", clientID: "c", subject: "alice", resource: "r", authTime: now, loginSeq: st.loginSeq(), expires: now.Add(time.Hour)}
	for _, tok := range []string{"old", "other"} {
		if err := st.addRefresh(tok, g, now); err != nil {
			t.Fatal(err)
		}
	}
	if !st.consumeRefresh("old", now) {
		t.Fatal("refresh token not usable")
	}
	st.unspend("old", g) // the refresh issued nothing
	if _, ok := st.peekRefresh("old", now); !ok {
		t.Fatal("a token given back does not work")
	}
	if st.stolenGrant("old", "c", now.Add(refreshReuseGrace)) != "" {
		t.Error("a token given back still counts as spent")
	}
	if !st.consumeRefresh("old", now) {
		t.Fatal("refresh token not usable again")
	}
	st.revokeGrant("g1", now) // the reuse's revocation, before the refresh adds its tokens
	if err := st.addLive("jti1", liveToken{expires: now.Add(time.Hour), grant: "g1", loginSeq: g.loginSeq, subject: "alice", clientID: "c"}, now); !errors.Is(err, errGrantRevoked) {
		t.Errorf("access token of the revoked grant added after its revocation: %v", err)
	}
	if err := st.addRefresh("new", g, now); !errors.Is(err, errGrantRevoked) {
		t.Errorf("refresh token of the revoked grant added after its revocation: %v", err)
	}
	st.unspend("old", g)
	if _, ok := st.peekRefresh("old", now); ok {
		t.Error("a token of a revoked grant was given back")
	}
	if _, ok := st.peekRefresh("other", now); ok {
		t.Error("another token of the revoked grant works")
	}
}

// A code presented again while its first redemption is under way (spent,
// its tokens not added yet) revokes the grant that redemption began: it
// adds none of them after. The record lasts until the tokens it gave would
// have expired; a code never redeemed names no grant.
func TestCodeReusedDuringRedemption(t *testing.T) {
	st := newState(10)
	now := time.Now()
	ar := &authRequest{id: "ar1", clientID: "c", created: now}
	if err := st.addAuthRequest(ar); err != nil {
		t.Fatal(err)
	}
	done, ok := st.completeLogin("ar1", "alice", now, func(string) bool { return true })
	if !ok {
		t.Fatal("login not completed")
	}
	keep := now.Add(time.Hour)
	if _, ok := st.redeemCode(done.code, "g1", keep, now); !ok {
		t.Fatal("code not redeemed")
	}
	if _, ok := st.redeemCode(done.code, "g2", keep, now); ok {
		t.Fatal("code redeemed twice")
	}
	g := st.reusedCode(done.code, now)
	if g != "g1" {
		t.Fatalf("reusedCode %q, want the first redemption's grant g1", g)
	}
	st.revokeGrant(g, now)
	if err := st.addLive("jti1", liveToken{expires: keep, grant: "g1", loginSeq: done.loginSeq, subject: "alice", clientID: "c"}, now); !errors.Is(err, errGrantRevoked) {
		t.Errorf("access token of the reused code added after its reuse: %v", err)
	}
	if err := st.addRefresh("r1", refreshGrant{grant: "g1", clientID: "c", subject: "alice", loginSeq: done.loginSeq, expires: keep}, now); !errors.Is(err, errGrantRevoked) {
		t.Errorf("refresh token of the reused code added after its reuse: %v", err)
	}
	if g := st.reusedCode("never-issued", now); g != "" {
		t.Errorf("a code never redeemed names grant %q", g)
	}
	if g := st.reusedCode(done.code, keep); g != "" {
		t.Errorf("a code whose tokens have expired names grant %q", g)
	}
	st.sweepLocked(keep, true)
	if len(st.spentCodes) != 0 {
		t.Errorf("spent codes kept past their tokens' expiry: %d", len(st.spentCodes))
	}
}
