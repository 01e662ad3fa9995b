package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/outbound"
	"github.com/pingmcp/pingmcp/internal/privfile"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/telemetry"
)

// adminCLI runs `pingmcp sessions …`, `pingmcp tasks …`, `pingmcp nodes
// …`, `pingmcp users …` and `pingmcp apis …`: the operator commands, which
// talk to a node's admin API. adminUsage lists their verbs.
//
// --admin-url (PINGMCP_ADMIN_URL) names the admin API; the token comes from
// --admin-token-file (PINGMCP_ADMIN_TOKEN_FILE) or PINGMCP_ADMIN_TOKEN. It
// is sent to a plain http URL served by this host only when the process at
// the other end may read it anyway (adminpeer.go).
// -o json prints the API's JSON instead of a table. --help (or -h), with a
// verb or without, prints the command's verbs and their flags.
func adminCLI(ctx context.Context, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	fs := flag.NewFlagSet("pingmcp "+cmd+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { adminHelp(stderr, cmd, fs) }
	adminURL := fs.String("admin-url", cmp.Or(getenv("PINGMCP_ADMIN_URL"), "http://127.0.0.1:9090"), "the admin API of any node (env PINGMCP_ADMIN_URL); on Linux, a plain http one served by this host gets the token only if held by this user's, root's or the token file owner's process")
	tokenFile := fs.String("admin-token-file", getenv("PINGMCP_ADMIN_TOKEN_FILE"), "file holding the admin token (env PINGMCP_ADMIN_TOKEN_FILE; or the token itself in env PINGMCP_ADMIN_TOKEN)")
	output := fs.String("o", "table", "output: table or json")
	user := fs.String("user", "", "sessions ls, tasks ls: only this user's (token subject)")
	client := fs.String("client", "", "sessions ls, tasks ls: only this OAuth client's")
	node := fs.String("node", "", "sessions ls: only those last activated on this node (its cluster address)")
	session := fs.String("session", "", "tasks ls: only the tasks of this session's user and client")
	status := fs.String("status", "", "tasks ls: only those with this status (working, input_required, completed, failed, cancelled)")
	limit := fs.Int("limit", 0, "sessions ls, tasks ls: at most this many (0: all)")
	span := fs.String("for", "1h", "users revoke: how long the user's current tokens are refused")
	issuer := fs.String("issuer", "", "users revoke: the user's issuer (default: the node's --issuer); tasks ls: only tasks acting for this issuer's users")
	switch {
	case isHelp(verb) || verb == "help":
		adminHelp(stdout, cmd, fs)
		return 0
	case verb == "":
		fmt.Fprintf(stderr, "pingmcp %s: which one? (%s)\n\n", cmd, strings.Join(adminVerbs(cmd), ", "))
		adminHelp(stderr, cmd, fs)
		return 2
	case !slices.ContainsFunc(adminUsage[cmd], func(u string) bool { return u == verb || strings.HasPrefix(u, verb+" ") }):
		fmt.Fprintf(stderr, "pingmcp: unknown command %q\n\n", cmd+" "+verb)
		adminHelp(stderr, cmd, fs)
		return 2
	}
	// Flags may come before or after the session id, and a session id may
	// begin with "-" (base64url): an argument is a flag only if it names
	// one of ours.
	flags, positional := splitArgs(fs, args[1:])
	if slices.ContainsFunc(flags, isHelp) {
		adminHelp(stdout, cmd, fs)
		return 0
	}
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintln(stderr, "pingmcp: -o must be table or json")
		return 2
	}
	token, readers := strings.TrimSpace(getenv("PINGMCP_ADMIN_TOKEN")), selfReaders()
	if *tokenFile != "" {
		b, owner, err := readTokenFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "pingmcp: --admin-token-file: %v\n", err)
			return 2
		}
		token, readers.file, readers.owner = strings.TrimSpace(string(b)), *tokenFile, owner
	}
	if token == "" {
		fmt.Fprintln(stderr, "pingmcp: no admin token: give --admin-token-file or PINGMCP_ADMIN_TOKEN")
		return 2
	}
	hc := &http.Client{Timeout: 15 * time.Second}
	if u, err := url.Parse(*adminURL); err != nil || u.Scheme != "https" {
		// Plain http: the token goes to whoever holds the address, which
		// on this host may be another user's process (adminpeer.go).
		hc.Transport = guardedTransport(readers)
	}
	c := &adminClient{base: strings.TrimSuffix(*adminURL, "/") + "/admin/v1", token: token, http: outbound.Client(hc, "admin")}
	id := ""
	if len(positional) > 0 {
		id = positional[0]
	}
	needID := func() bool {
		if id == "" {
			fmt.Fprintf(stderr, "pingmcp %s %s: which session? (an id from pingmcp sessions ls)\n", cmd, verb)
			return false
		}
		return true
	}
	// taskPath is the API's path of the task OWNER/ID names.
	taskPath := func() (string, bool) {
		owner, tid, ok := strings.Cut(id, "/")
		if !ok || owner == "" || tid == "" || strings.Contains(tid, "/") {
			fmt.Fprintf(stderr, "pingmcp %s %s: which task? (OWNER/ID, as pingmcp tasks ls prints it)\n", cmd, verb)
			return "", false
		}
		return "/tasks/" + url.PathEscape(owner) + "/" + url.PathEscape(tid), true
	}
	var err error
	switch cmd + " " + verb {
	case "sessions ls":
		err = c.listSessions(ctx, url.Values{"user": {*user}, "client": {*client}, "node": {*node}}, *limit, *output, stdout)
	case "sessions show":
		if !needID() {
			return 2
		}
		err = c.showSession(ctx, id, *output, stdout)
	case "sessions kill":
		if !needID() {
			return 2
		}
		if err = c.do(ctx, http.MethodDelete, "/sessions/"+url.PathEscape(id), nil); err == nil {
			fmt.Fprintf(stdout, "session %s ended\n", id)
		}
	case "tasks ls":
		err = c.listTasks(ctx, url.Values{"user": {*user}, "client": {*client}, "issuer": {*issuer}, "session": {*session}, "status": {*status}}, *limit, *output, stdout)
	case "tasks show":
		path, ok := taskPath()
		if !ok {
			return 2
		}
		err = c.showTask(ctx, path, *output, stdout)
	case "tasks cancel":
		path, ok := taskPath()
		if !ok {
			return 2
		}
		var t admin.TaskInfo
		if err = c.do(ctx, http.MethodPost, path+"/cancel", &t); err == nil {
			if *output == "json" {
				err = json.NewEncoder(stdout).Encode(t)
			} else {
				fmt.Fprintf(stdout, "task %s cancelled: its round stops wherever it runs\n", id)
			}
		}
	case "nodes ls":
		err = c.listNodes(ctx, *output, stdout)
	case "nodes drain":
		if id == "" {
			fmt.Fprintln(stderr, "pingmcp nodes drain: which node? (an address from pingmcp nodes ls)")
			return 2
		}
		var out map[string]any
		if err = c.do(ctx, http.MethodPost, "/nodes/"+url.PathEscape(id)+"/drain", &out); err == nil {
			if *output == "json" {
				err = json.NewEncoder(stdout).Encode(out)
			} else {
				fmt.Fprintf(stdout, "node %s is draining: its %v sessions move to the other nodes, then it exits\n", id, out["sessions"])
			}
		}
	case "users revoke":
		if id == "" {
			fmt.Fprintln(stderr, "pingmcp users revoke: whose? (a token subject)")
			return 2
		}
		q := url.Values{"for": {*span}}
		if *issuer != "" {
			q.Set("issuer", *issuer)
		}
		var out map[string]any
		err = c.do(ctx, http.MethodPost, "/users/"+url.PathEscape(id)+"/revoke?"+q.Encode(), &out)
		if out["until"] != nil { // revoked, perhaps without the grants (502)
			if *output == "json" {
				if jerr := json.NewEncoder(stdout).Encode(out); err == nil {
					err = jerr
				}
			} else {
				fmt.Fprintf(stdout, "user %s revoked until %v: %v sessions ended, %v live actors stopped\n", id, out["until"], out["sessions_ended"], out["actors_stopped"])
				if u, _ := out["nodes_unreached"].([]any); len(u) > 0 {
					fmt.Fprintf(stderr, "pingmcp users revoke: these nodes could not be told, their actors of the user stop at their next request: %v\n", u)
				}
				if out["grants_revoked"] == true {
					fmt.Fprintln(stdout, "their grants were revoked at the authorization server: their refresh tokens no longer work")
				} else {
					fmt.Fprintf(stderr, "pingmcp users revoke: their grants were NOT revoked at the authorization server, their client may refresh once the revocation ends: %v\n", out["grants_error"])
				}
			}
			if err != nil {
				err = fmt.Errorf("the user's grants could not be revoked; run this again (%w)", err)
			}
		}
	case "apis reload":
		// Each node fetches its documents again: give them the time.
		c.http.Timeout = 90 * time.Second
		err = c.reloadAPIs(ctx, *output, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "pingmcp: unknown command %q\n", cmd+" "+verb)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "pingmcp %s %s: %v\n", cmd, verb, err)
		return 1
	}
	return 0
}

// adminUsage is each admin command's verbs, with their arguments and the
// flags of their own, as the command's help prints them; every verb also
// takes --admin-url, --admin-token-file and -o.
var adminUsage = map[string][]string{
	"sessions": {"ls [--user SUB] [--client ID] [--node ADDRESS] [--limit N]", "show ID", "kill ID"},
	"tasks":    {"ls [--user SUB] [--client ID] [--issuer URL] [--session ID] [--status S] [--limit N]", "show OWNER/ID", "cancel OWNER/ID"},
	"nodes":    {"ls", "drain ADDRESS"},
	"users":    {"revoke SUBJECT [--for 1h] [--issuer URL]"},
	"apis":     {"reload"},
}

// adminVerbs are cmd's verbs with their arguments, without the flags.
func adminVerbs(cmd string) []string {
	var out []string
	for _, u := range adminUsage[cmd] {
		v, _, _ := strings.Cut(u, " [")
		out = append(out, v)
	}
	return out
}

// adminHelp prints cmd's verbs and the flags they take (those of fs that
// every verb takes, and those its verbs name), as config's help prints a
// command's flags.
func adminHelp(w io.Writer, cmd string, fs *flag.FlagSet) {
	for _, c := range config.Commands {
		if c.Name == cmd {
			fmt.Fprintf(w, "pingmcp %s: %s\n\n", cmd, c.Summary)
		}
	}
	fmt.Fprintln(w, "Usage:")
	names := map[string]bool{"admin-url": true, "admin-token-file": true, "o": true}
	for _, u := range adminUsage[cmd] {
		fmt.Fprintf(w, "  pingmcp %s %s\n", cmd, u)
		for _, f := range strings.Fields(u) {
			if name, ok := strings.CutPrefix(strings.Trim(f, "[]"), "--"); ok {
				names[name] = true
			}
		}
	}
	fmt.Fprintln(w, "\nFlags (before or after the verb's argument):")
	fs.VisitAll(func(f *flag.Flag) {
		if !names[f.Name] {
			return
		}
		dashes, def := "--", ""
		if len(f.Name) == 1 {
			dashes = "-"
		}
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "  %s%s\n        %s%s\n", dashes, f.Name, f.Usage, def)
	})
}

// isHelp says whether arg asks for help, as the flag package reads it.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// splitArgs separates the flags of fs (with their values) from the other
// arguments; everything after "--" is positional.
func splitArgs(fs *flag.FlagSet, args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(positional, args[i+1:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if !strings.HasPrefix(a, "-") || (f == nil && name != "h" && name != "help") {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		if f == nil || hasValue { // -h, --help; or -name=value
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !(ok && b.IsBoolFlag()) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, positional
}

// readTokenFile reads the admin token's file, and its owner's uid (-1 if
// unknown).
func readTokenFile(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, -1, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, -1, err
	}
	b, err := io.ReadAll(f)
	return b, privfile.Owner(fi), err
}

type adminClient struct {
	base, token string
	http        *http.Client
}

// do calls the admin API and decodes its JSON answer into out (if set).
func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		if refused := (*peerRefused)(nil); errors.As(err, &refused) {
			return refused // said whole, not after the URL
		}
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode >= 300 {
		// An answer that failed may still say what was done (a
		// revocation whose grants could not be revoked, say).
		if out != nil {
			json.Unmarshal(body, out)
		}
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// listAll reads the pages of a list (path, its items under key) with
// filters q, at most limit items (0: all).
func (c *adminClient) listAll(ctx context.Context, path, key string, q url.Values, limit int) ([]json.RawMessage, error) {
	var all []json.RawMessage
	cursor := ""
	for {
		q.Set("cursor", cursor)
		q.Set("limit", "500")
		var page map[string]json.RawMessage
		if err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		var items []json.RawMessage
		var next string
		if err := json.Unmarshal(page[key], &items); err != nil {
			return nil, fmt.Errorf("the admin API's answer has no %s: %w", key, err)
		}
		json.Unmarshal(page["next"], &next)
		all = append(all, items...)
		if next == "" || (limit > 0 && len(all) >= limit) {
			break
		}
		cursor = next
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

func (c *adminClient) listSessions(ctx context.Context, q url.Values, limit int, output string, w io.Writer) error {
	return c.listTable(ctx, "sessions", q, limit, output, w,
		"ID\tUSER\tCLIENT\tCLIENT APP\tPROTOCOL\tNODE\tSTATE\tCREATED\tLAST ACTIVE", func(raw json.RawMessage) []string {
			var s state.SessionInfo
			json.Unmarshal(raw, &s)
			return []string{s.ID, dash(s.Subject), dash(s.ClientID), dash(strings.TrimSpace(s.ClientName + " " + s.ClientVersion)),
				dash(s.ProtocolVersion), dash(s.Node), liveness(s), ago(s.Created), ago(s.Active)}
		})
}

func (c *adminClient) listTasks(ctx context.Context, q url.Values, limit int, output string, w io.Writer) error {
	return c.listTable(ctx, "tasks", q, limit, output, w,
		"TASK (OWNER/ID)\tUSER\tCLIENT\tTOOL\tSTATUS\tMESSAGE\tNODE\tCREATED\tUPDATED", func(raw json.RawMessage) []string {
			var t admin.TaskInfo
			json.Unmarshal(raw, &t)
			return []string{t.Owner + "/" + t.ID, dash(t.Subject), dash(t.ClientID), dash(t.Tool), t.Status, dash(t.StatusMessage),
				dash(t.Node), ago(t.Created), ago(t.Updated)}
		})
}

// listTable prints a whole list (/what, its items under what) as the API's
// JSON or as a table: header, then each item's row.
func (c *adminClient) listTable(ctx context.Context, what string, q url.Values, limit int, output string, w io.Writer, header string, row func(json.RawMessage) []string) error {
	all, err := c.listAll(ctx, "/"+what, what, q, limit)
	if err != nil {
		return err
	}
	if output == "json" {
		return json.NewEncoder(w).Encode(map[string]any{what: all})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, raw := range all {
		cells := row(raw)
		for i := range cells {
			cells[i] = telemetry.Printable(cells[i])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func (c *adminClient) showTask(ctx context.Context, path, output string, w io.Writer) error {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, path, &raw); err != nil {
		return err
	}
	if output == "json" {
		_, err := fmt.Fprintln(w, string(raw))
		return err
	}
	var t admin.TaskInfo
	json.Unmarshal(raw, &t)
	lease, failure := "-", "-"
	if t.LeaseUntil != nil {
		lease = t.LeaseUntil.Format(time.RFC3339)
	}
	if t.Error != nil {
		failure = fmt.Sprintf("%d %s", t.Error.Code, t.Error.Message)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"task", t.Owner + "/" + t.ID}, {"issuer", dash(t.Issuer)}, {"user", dash(t.Subject)}, {"client", dash(t.ClientID)},
		{"tool", dash(t.Tool)}, {"status", t.Status}, {"message", dash(t.StatusMessage)}, {"error", failure},
		{"node", dash(t.Node)}, {"runner", dash(t.Runner)}, {"lease until", lease}, {"resumes", strconv.Itoa(t.Resumes)},
		{"created", ago(t.Created)}, {"updated", ago(t.Updated)}, {"expires", t.Expires.Format(time.RFC3339)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], telemetry.Printable(kv[1]))
	}
	return tw.Flush()
}

func (c *adminClient) showSession(ctx context.Context, id, output string, w io.Writer) error {
	var s state.SessionInfo
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/sessions/"+url.PathEscape(id), &raw); err != nil {
		return err
	}
	if output == "json" {
		_, err := fmt.Fprintln(w, string(raw))
		return err
	}
	json.Unmarshal(raw, &s)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"session", s.ID}, {"issuer", dash(s.Issuer)}, {"user", dash(s.Subject)}, {"client", dash(s.ClientID)},
		{"client app", dash(strings.TrimSpace(s.ClientName + " " + s.ClientVersion))}, {"protocol", dash(s.ProtocolVersion)},
		{"log level", dash(s.LogLevel)}, {"subscriptions", dash(strings.Join(s.Subscriptions, ", "))},
		{"node", dash(s.Node)}, {"epoch", strconv.FormatInt(s.Epoch, 10)}, {"state", liveness(s)},
		{"open streams", strconv.Itoa(s.Streams)}, {"requests in flight", strconv.Itoa(s.InFlight)},
		{"created", ago(s.Created)}, {"last active", ago(s.Active)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], telemetry.Printable(kv[1]))
	}
	for _, d := range s.Delegations {
		act, _ := json.Marshal(d.Act)
		fmt.Fprintf(tw, "cached token:\t%s\n", telemetry.Printable(fmt.Sprintf("audience %s, scopes %s, act %s, jti %s, expires %s",
			d.Audience, strings.Join(d.Scopes, " "), act, dash(d.JTI), d.Expiry.Format(time.RFC3339))))
	}
	return tw.Flush()
}

func (c *adminClient) listNodes(ctx context.Context, output string, w io.Writer) error {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/nodes", &raw); err != nil {
		return err
	}
	if output == "json" {
		_, err := fmt.Fprintln(w, string(raw))
		return err
	}
	var out struct{ Nodes []admin.NodeInfo }
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tROLE\tVERSION\tSESSIONS\tPRINCIPALS\tSTATE\tHTTP\tTHIS NODE\tROUTE FROM IT")
	for _, n := range out.Nodes {
		self, state := "", "serving"
		if n.Self {
			self = "yes"
		}
		switch {
		case n.Error != "":
			state = "unreachable: " + n.Error
		case n.Draining:
			state = "draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", n.Address, dash(n.Role), dash(n.Version), n.Sessions, n.Principals,
			state, dash(n.HTTPAddr), self, dash(n.Route))
	}
	return tw.Flush()
}

// reloadAPIs asks every node to reload its --apis file and documents, and
// prints what each did; an error when a node did not reload.
func (c *adminClient) reloadAPIs(ctx context.Context, output string, w, errw io.Writer) error {
	var out struct {
		Reloaded bool
		Nodes    []admin.APIsReload
	}
	err := c.do(ctx, http.MethodPost, "/apis/reload", &out)
	if len(out.Nodes) == 0 {
		return err
	}
	if output == "json" {
		if jerr := json.NewEncoder(w).Encode(out); err == nil {
			err = jerr
		}
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tRESULT\tGENERATION\tTOOLS\tADDED\tREMOVED")
	for _, n := range out.Nodes {
		result := "reloaded"
		if !n.Reloaded {
			result = "refused: tools unchanged"
			fmt.Fprintf(errw, "node %s: %s\n", n.Address, n.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", n.Address, result, n.Generation, n.Tools,
			dash(strings.Join(n.Added, " ")), dash(strings.Join(n.Removed, " ")))
	}
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if err != nil && !out.Reloaded {
		err = fmt.Errorf("not every node reloaded (%w)", err)
	}
	return err
}

// liveness says whether a session's actor is running or only its snapshot
// is left, or why its snapshot cannot be read (the session can be killed
// all the same).
func liveness(s state.SessionInfo) string {
	if s.Unreadable != "" {
		return "unreadable: " + s.Unreadable
	}
	if s.Live {
		return "live"
	}
	return "passivated"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago prints a time as how long ago it was, to the second.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
