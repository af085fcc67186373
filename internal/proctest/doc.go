// Package proctest holds what the real-process test suites share
// (internal/faults, build tag faults; internal/cluster, build tag cluster):
//
//   - Build compiles the xmppgw and nats-server binaries, once per suite,
//     without -race; Main is the suites' TestMain around it (build, run,
//     print the suite's table);
//   - Proc is a child process that can be started, stopped (SIGTERM), killed
//     (kill -9) and started again, with one log file across restarts
//     (LogLines, LogTail); FoldLog shows such lines once each, numbers aside;
//   - Tap is a TCP relay between the gateway and Prosody's component port
//     that records, per XEP-0114 connection, which messages crossed it, so
//     that the suites can tell the socket window of a cut connection from a
//     lost message;
//   - Poll and FreeAddr are the small helpers around them.
//
// Each suite keeps its scenarios, traffic and accounting.
package proctest
