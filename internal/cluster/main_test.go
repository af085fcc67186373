//go:build cluster

// Package cluster_test runs xmppgw beyond one machine, on loopback: a
// cluster of three real nats-server processes (routes, JetStream, streams
// and buckets with 3 replicas), real Prosody, the fake Twilio API and the
// real xmppgw binary as separate processes in their roles.
//
//	make test-cluster    # go test -tags cluster -count=1 -v ./internal/cluster/
//
// Scenarios:
//   - TestReplicatedBus: the bus package against the cluster, publishing
//     and consuming while the node leading the streams is killed (kill -9);
//   - TestRolesSplit: a component, two adapter workers and a webhook
//     ingress, with sandbox and Twilio traffic both ways: nothing lost or
//     duplicated, and both workers take a share;
//   - TestStandbyFailover: two component processes for one domain; the
//     active one is killed (kill -9) mid-run and the standby connects;
//   - TestNATSNodeKilled: the node leading the message streams is killed
//     mid-run.
//
// Traffic and accounting follow internal/faults (which see): alice sends
// numbered messages o-00001… to a Twilio contact over XMPP, a poster sends
// numbered signed webhooks i-00001… to the ingress (posted again until
// answered 200, as Twilio does), both paced at -rate per second. Each
// message ends delivered (extra copies are duplicates), reported as an error
// to its sender (Prosody's bounces while no component is connected count:
// they are correct reports), in the XEP-0114 socket window of a connection
// a fault cut (measured with a TCP relay between Prosody and the components,
// the same as in internal/faults), or lost. Lost and duplicated fail the
// test. The table of every scenario is printed at the end.
package cluster_test

import (
	"os"
	"testing"

	"github.com/xmppgw/xmppgw/internal/scenario"
)

var (
	// suite builds xmppgw without -race: these tests measure timing
	// (failover, elections); `make test` covers races.
	suite = scenario.NewSuite("xmppgw-cluster-bin-", 1000, 100, "")

	results resultTable
)

func TestMain(m *testing.M) {
	os.Exit(suite.Main(m, results.String))
}
