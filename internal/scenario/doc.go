// Package scenario holds the shared pieces of the multi-process fault and
// cluster suites (internal/faults, build tag faults; internal/cluster, build
// tag cluster), which run the real xmppgw binary against real Prosody and
// NATS and account for every message of a numbered series:
//
//   - Suite is their TestMain: the binaries, and the flags -n and -rate
//     that size the traffic;
//   - Config is the xmppgw configuration file their gateway processes run;
//     Get and SumMetric read a process' HTTP endpoints;
//   - Series numbers the messages (o-00001… to Twilio, i-00001… from it,
//     s-00001… to the sandbox); Due paces them, Chat is one alice writes,
//     PostWebhook delivers an inbound one as Twilio does, and Inbound
//     keeps what became of those;
//   - ToComponent and Inbound.Window apply the XEP-0114 socket window rule
//     to what the proctest.Tap saw; Settle waits for a scenario to end;
//     the rest are the small helpers of their reports.
//
// What is particular to one suite (its faults, its world of processes, the
// columns of its table) stays in that suite; internal/proctest has the
// process, tap and build machinery underneath both.
package scenario
