// Package config turns pingmcp's command line and environment into a Config.
//
// Every flag --some-flag can also be set as PINGMCP_SOME_FLAG; the command
// line wins over the environment, which wins over the default. The package
// validates values and their combinations (auth "none" only on loopback, say)
// and leaves acting on them to cmd/pingmcp.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// Config is everything a pingmcp command is told.
type Config struct {
	Command string

	Addr               string
	ClusterAddr        string
	ClusterAdvertise   string
	ClusterSeeds       []string
	ClusterProvider    string
	Role               string
	Tools              []string
	Auth               string
	AllowedOrigins     []string
	AllowedHosts       []string
	SessionIdleTimeout time.Duration
	MaxBodyBytes       int64
	LogLevel           string
	LogFormat          string
}

// Commands lists the subcommands and what they do, for help.
var Commands = []struct{ Name, Summary string }{
	{"dev", "run everything in one process on loopback, state in memory (the embedded default)"},
	{"serve", "run one node of a pingmcp cluster"},
}

// Known values of enumerated flags.
var (
	Providers = []string{"single", "automanaged", "k8s"}
	Roles     = []string{"both", "edge", "member"}
	AuthModes = []string{"none", "jwt", "introspection"}
	Toolsets  = []string{"todo", "conformance"}
)

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return "PINGMCP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse reads the flags of command from args and the environment. With
// --help it writes usage to out and returns flag.ErrHelp.
func Parse(command string, args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{Command: command}
	fs := flag.NewFlagSet("pingmcp "+command, flag.ContinueOnError)
	fs.SetOutput(out)

	var seeds, tools, origins, hosts string
	dev := command == "dev"
	defAddr, defAuth := ":8080", "jwt"
	if dev {
		defAddr, defAuth = "127.0.0.1:8080", "none"
	}
	fs.StringVar(&c.Addr, "addr", defAddr, "HTTP address of the edge (/mcp, /healthz, /readyz)")
	fs.StringVar(&tools, "tools", "conformance", "comma-separated toolsets the MCP server offers: "+strings.Join(Toolsets, ", "))
	fs.StringVar(&c.Auth, "auth", defAuth, "how /mcp authenticates callers: "+strings.Join(AuthModes, ", ")+` ("none" only when every listen address is loopback)`)
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser origins allowed to call /mcp besides same-origin (and loopback origins on a loopback listener)")
	fs.StringVar(&hosts, "allowed-hosts", "", "comma-separated Host values /mcp answers to (DNS-rebinding protection); empty: loopback names on a loopback listener, any otherwise")
	fs.DurationVar(&c.SessionIdleTimeout, "session-idle-timeout", 30*time.Minute, "passivate a session with no request and no open stream for this long (0: never)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 4<<20, "largest request body /mcp accepts (413 beyond)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text, json")
	if !dev {
		fs.StringVar(&c.ClusterAddr, "cluster-addr", "127.0.0.1:0", "host:port of this node's cluster endpoint (port 0 picks a free one)")
		fs.StringVar(&c.ClusterAdvertise, "cluster-advertised-addr", "", "host:port other nodes dial to reach this one (a pod IP on Kubernetes); --cluster-addr when empty")
		fs.StringVar(&seeds, "cluster-seeds", "", "comma-separated cluster addresses of other nodes to join (the automanaged provider)")
		fs.StringVar(&c.ClusterProvider, "cluster-provider", "", "membership: "+strings.Join(Providers, ", ")+" (default: single without seeds, automanaged with them)")
		fs.StringVar(&c.Role, "role", "both", "what this node does: both, edge (serves /mcp, hosts no actors), member (hosts actors, serves only health)")
	}

	fs.Usage = func() { usage(fs, command, out) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" && !set[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}

	c.ClusterSeeds = splitList(seeds)
	c.Tools = splitList(tools)
	c.AllowedOrigins = splitList(origins)
	c.AllowedHosts = splitList(hosts)
	if dev {
		c.ClusterAddr, c.ClusterProvider, c.Role = "127.0.0.1:0", "single", "both"
	}
	if c.ClusterProvider == "" {
		c.ClusterProvider = "single"
		if len(c.ClusterSeeds) > 0 {
			c.ClusterProvider = "automanaged"
		}
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []error
	check := func(name, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			errs = append(errs, fmt.Errorf("--%s %q: want one of %s", name, v, strings.Join(allowed, ", ")))
		}
	}
	check("cluster-provider", c.ClusterProvider, Providers)
	check("role", c.Role, Roles)
	check("auth", c.Auth, AuthModes)
	check("log-level", c.LogLevel, []string{"debug", "info", "warn", "error"})
	check("log-format", c.LogFormat, []string{"text", "json"})
	for _, t := range c.Tools {
		check("tools", t, Toolsets)
	}
	if len(c.Tools) == 0 {
		errs = append(errs, errors.New("--tools: at least one toolset is needed"))
	}
	if c.Auth != "none" && c.Command == "serve" {
		// Until the identity issue lands, only "none" has a verifier.
		errs = append(errs, fmt.Errorf("--auth %s is not available in this build yet; use --auth none on loopback", c.Auth))
	}
	if c.Auth == "none" {
		for _, a := range []string{c.Addr, c.ClusterAddr} {
			if a != "" && !IsLoopback(a) {
				errs = append(errs, fmt.Errorf("--auth none is refused: %q is not a loopback address (anyone who reaches it could act as any user)", a))
			}
		}
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("--max-body-bytes must be positive"))
	}
	if c.SessionIdleTimeout < 0 {
		errs = append(errs, errors.New("--session-idle-timeout must not be negative"))
	}
	for _, s := range c.ClusterSeeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-seeds %q: %w", s, err))
		}
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether a listen address host:port binds loopback only.
// An empty host (":8080") binds every interface.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func usage(fs *flag.FlagSet, command string, out io.Writer) {
	for _, c := range Commands {
		if c.Name == command {
			fmt.Fprintf(out, "pingmcp %s: %s\n\nFlags (each also read from the environment variable shown):\n", command, c.Summary)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(out, "  --%s\n        %s%s\n        env %s\n", f.Name, f.Usage, def, EnvName(f.Name))
	})
}

// Usage writes the top-level help.
func Usage(out io.Writer) {
	fmt.Fprintln(out, "pingmcp: a remote MCP server for APIs protected by PingFederate.\n\nUsage: pingmcp <command> [flags]\n\nCommands:")
	for _, c := range Commands {
		fmt.Fprintf(out, "  %-8s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintln(out, "\nRun 'pingmcp <command> --help' for the flags of a command; every flag --x-y is also read from PINGMCP_X_Y.")
}
