package admin

import (
	"net/http"
	"time"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// reloadWait bounds how long the admin API waits for the nodes' reloads:
// each node bounds its own to a minute (reading the APIs file, fetching
// its documents, building the tools).
const reloadWait = 75 * time.Second

// APIsReload is one node's answer to a reload of --apis.
type APIsReload struct {
	Address string `json:"address"`
	// Reloaded says the node offers the new tools; otherwise Error says
	// why (the API, operation and reason of each refusal, or that the node
	// could not be asked) and its tools are those it had.
	Reloaded   bool     `json:"reloaded"`
	Error      string   `json:"error,omitempty"`
	Generation uint64   `json:"generation,omitempty"`
	Tools      int      `json:"tools,omitempty"`
	Added      []string `json:"added,omitempty"`
	Removed    []string `json:"removed,omitempty"`
}

// reloadAPIs asks every member to read its --apis file and fetch the
// documents it names again, as on SIGHUP, and answers what each did: 200
// when every node reloaded, 422 when a node refused (its tools stay as they
// were), 502 when a node could not be asked.
func (a *api) reloadAPIs(w http.ResponseWriter, r *http.Request) {
	if a.opts.Node == nil {
		writeError(w, http.StatusServiceUnavailable, "this admin API has no cluster to reload")
		return
	}
	addrs := a.memberAddrs()
	answers, errs := a.ask(r.Context(), reloadWait, addrs, func(string) *envelope.NodeQuery { return &envelope.NodeQuery{ReloadApis: true} })
	out := []APIsReload{}
	status, reloaded := http.StatusOK, 0
	for _, addr := range addrs {
		n := APIsReload{Address: addr}
		switch res := answers[addr].GetApisReload(); {
		case errs[addr] != nil:
			n.Error = "the node could not be asked: " + errs[addr].Error()
			if status == http.StatusOK {
				status = http.StatusBadGateway
			}
		case res == nil:
			n.Error = "the node did not reload: its build predates reloads"
			if status == http.StatusOK {
				status = http.StatusBadGateway
			}
		default:
			n.Reloaded, n.Error, n.Generation = res.Reloaded, res.Error, res.Generation
			n.Tools, n.Added, n.Removed = int(res.Tools), res.Added, res.Removed
			if res.Reloaded {
				reloaded++
			} else {
				status = http.StatusUnprocessableEntity
			}
		}
		out = append(out, n)
	}
	a.opts.Logger.Info("admin: --apis reload asked", "nodes", len(addrs), "reloaded", reloaded, "operator", OperatorOf(r.Context()).String())
	writeJSON(w, status, map[string]any{"reloaded": reloaded == len(addrs), "nodes": out})
}
