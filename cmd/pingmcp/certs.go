package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/config"
)

// certs writes the cluster's CA and node certificates (cluster.WriteCerts)
// and tells which flags each node takes.
func certs(cfg *config.Config, stdout io.Writer) error {
	names := cfg.CertsNames
	if len(names) == 0 {
		for i := 1; i <= cfg.CertsNodes; i++ {
			names = append(names, "node-"+strconv.Itoa(i))
		}
	}
	files, ca, err := cluster.WriteCerts(cfg.CertsDir, cluster.CertsOptions{
		Nodes: names, Hosts: cfg.CertsHosts, Validity: cfg.CertsValidity, CAValidity: cfg.CertsCAValidity,
	})
	// Files written before a failure are reported too.
	caKey := filepath.Join(cfg.CertsDir, cluster.CAKeyFile)
	if ca.Made {
		fmt.Fprintf(stdout, "Made a cluster CA: %s, and its key %s.\n", filepath.Join(cfg.CertsDir, cluster.CACertFile), caKey)
	} else if len(files) > 0 {
		fmt.Fprintf(stdout, "Issued with the CA already in %s: check that it is yours.\n", cfg.CertsDir)
	}
	if ca.Fingerprint != "" {
		fmt.Fprintf(stdout, "The CA's SHA-256 fingerprint: %s\n", ca.Fingerprint)
	}
	if len(files) > 0 {
		valid := cfg.CertsValidity.String()
		if day := 24 * time.Hour; cfg.CertsValidity%day == 0 {
			valid = fmt.Sprintf("%d days", cfg.CertsValidity/day)
		}
		fmt.Fprintf(stdout, "Node certificates (valid %s, names %s); start each node with its flags:\n", valid, strings.Join(cfg.CertsHosts, ", "))
		for _, f := range files {
			fmt.Fprintf(stdout, "  %s: %s\n", f.Name, strings.Join(f.Args(), " "))
		}
		fmt.Fprintf(stdout, "Any certificate of this CA admits its holder to the cluster: keep %s off the nodes, and each node's key on its node.\n", caKey)
	}
	return err
}
