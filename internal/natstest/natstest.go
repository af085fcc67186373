// Package natstest runs real nats-server processes for tests: a cluster of
// nodes on loopback, JetStream on, each with its own store in a temporary
// directory, routes between all of them. Nodes can be killed (kill -9),
// stopped and started again on the same store and ports.
//
//	_, bin, err := proctest.Build(dir)            // once, in TestMain
//	c := natstest.StartCluster(t, bin, 3)         // ready: JetStream has a meta leader
//	b, err := bus.Open(ctx, bus.Options{URL: c.URL(), Replicas: 3})
//	c.MoveLeader(t, "XMPPGW_IN", c.Nodes[0].Name) // leaders where the test wants them
//	c.Nodes[0].Kill()                             // then c.Nodes[0].Start(t)
//
// The binary is built (proctest.Build) from the nats-server module this
// repository requires, so the cluster runs the version the embedded bus
// runs. Each node is a proctest.Proc.
package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xmppgw/xmppgw/internal/proctest"
)

// Cluster is a running set of nodes with routes to each other.
type Cluster struct {
	Name  string
	Nodes []*Node
}

// Node is one nats-server of a cluster.
type Node struct {
	*proctest.Proc
	Name        string // server_name: n1, n2, …
	ClientAddr  string // host:port for clients
	ClusterAddr string // host:port for routes
	Dir         string // config, store and log
}

// ClientURL is the node's nats:// URL.
func (n *Node) ClientURL() string { return "nats://" + n.ClientAddr }

// StartCluster starts size nodes and returns once JetStream answers (a meta
// leader is elected). Everything stops when the test ends.
func StartCluster(t testing.TB, binary string, size int) *Cluster {
	t.Helper()
	c := &Cluster{Name: "xmppgw-test"}
	base := t.TempDir()
	for i := range size {
		n := &Node{Name: fmt.Sprintf("n%d", i+1), ClientAddr: proctest.FreeAddr(t), ClusterAddr: proctest.FreeAddr(t)}
		n.Dir = filepath.Join(base, n.Name)
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		conf := filepath.Join(n.Dir, "nats-server.conf")
		if err := os.WriteFile(conf, []byte(c.config(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		n.Proc = proctest.NewProc(t, "nats-server "+n.Name, filepath.Join(n.Dir, "nats-server.log"), binary, "-c", conf)
		if err := n.Proc.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		n.waitListening(t)
	}
	c.WaitJetStream(t, 30*time.Second)
	return c
}

// config is the node's configuration file: what deploy/nats/nats-server.conf
// describes, on loopback ports, with a small memory store.
func (c *Cluster) config(n *Node) string {
	var routes []string
	for _, o := range c.Nodes {
		routes = append(routes, fmt.Sprintf("    nats-route://%s", o.ClusterAddr))
	}
	host, port, _ := net.SplitHostPort(n.ClientAddr)
	chost, cport, _ := net.SplitHostPort(n.ClusterAddr)
	return fmt.Sprintf(`server_name: %s
listen: %s:%s
jetstream {
  store_dir: %q   # files under <store_dir>/jetstream
  max_memory_store: 64MB
  max_file_store: 1GB
}
cluster {
  name: %s
  listen: %s:%s
  routes: [
%s
  ]
}
`, n.Name, host, port, n.Dir, c.Name, chost, cport, strings.Join(routes, "\n"))
}

// URL is every node's client URL, comma-separated, as bus.url takes them.
func (c *Cluster) URL() string {
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.ClientURL())
	}
	return strings.Join(urls, ",")
}

// Node returns the node called name, nil if none is.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Start starts a stopped or killed node again and waits until it listens.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.Proc.Start(); err != nil {
		t.Fatal(err)
	}
	n.waitListening(t)
}

func (n *Node) waitListening(t testing.TB) {
	t.Helper()
	ok := poll(30*time.Second, func() bool {
		if !n.Running() {
			return true
		}
		c, err := net.DialTimeout("tcp", n.ClientAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if !ok || !n.Running() {
		t.Fatalf("%s did not listen on %s:\n%s", n.Name, n.ClientAddr, n.LogTail(30))
	}
}

// connect opens a client connection to the running nodes.
func (c *Cluster) connect() (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// WaitJetStream waits until JetStream answers account requests, which
// needs a meta leader.
func (c *Cluster) WaitJetStream(t testing.TB, timeout time.Duration) {
	t.Helper()
	var last error
	if !poll(timeout, func() bool {
		nc, js, err := c.connect()
		if err != nil {
			last = err
			return false
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, last = js.AccountInfo(ctx)
		return last == nil
	}) {
		t.Fatalf("JetStream not ready within %v: %v", timeout, last)
	}
}

// StreamLeader is the name of the node leading stream ("" while none does).
func (c *Cluster) StreamLeader(t testing.TB, stream string) string {
	t.Helper()
	nc, js, err := c.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return ""
	}
	if ci := s.CachedInfo().Cluster; ci != nil {
		return ci.Leader
	}
	return ""
}

// MoveLeader makes node the leader of stream, or (with a consumer name
// after a slash, "STREAM/consumer") of that consumer, and waits until it is.
func (c *Cluster) MoveLeader(t testing.TB, target, node string) {
	t.Helper()
	stream, consumer, _ := strings.Cut(target, "/")
	nc, js, err := c.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := "$JS.API.STREAM.LEADER.STEPDOWN." + stream
	if consumer != "" {
		subject = "$JS.API.CONSUMER.LEADER.STEPDOWN." + stream + "." + consumer
	}
	leader := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var ci *jetstream.ClusterInfo
		if consumer != "" {
			cons, err := js.Consumer(ctx, stream, consumer)
			if err != nil {
				return ""
			}
			ci = cons.CachedInfo().Cluster
		} else {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return ""
			}
			ci = s.CachedInfo().Cluster
		}
		if ci == nil {
			return ""
		}
		return ci.Leader
	}
	var last string
	if !poll(30*time.Second, func() bool {
		cur := leader()
		if cur == node {
			return true
		}
		if cur == "" {
			return false // an election in progress
		}
		req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": node}})
		resp, err := nc.Request(subject, req, 5*time.Second)
		if err != nil {
			last = err.Error()
			return false
		}
		var r struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(resp.Data, &r) == nil && r.Error != nil {
			last = r.Error.Description
		}
		return false
	}) {
		t.Fatalf("could not move the leader of %s to %s (now %q): %s", target, node, leader(), last)
	}
}

// poll calls cond every 50 ms until it is true or timeout passes.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
