package proctest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"

	"time"
)

// Child is a server process a test runs (Prosody, ejabberd, ngircd): started
// in its own process group with its output appended to a log file, and
// waited on in the background. The caller builds the command, including
// its SysProcAttr (Setpgid, Pdeathsig, credentials), and keeps the
// server-specific parts: configuration, how to ask it to stop.
type Child struct {
	Cmd  *exec.Cmd
	done chan struct{} // closed when Cmd.Wait returned
	err  error         // Cmd.Wait's result, valid after done
}

// StartChild starts cmd with its output appended to logPath: a file, not a
// pipe, because a daemon helper that inherits a pipe would keep Wait from
// returning.
func StartChild(cmd *exec.Cmd, logPath string) (*Child, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// WaitListening polls until every address accepts a TCP connection, the
// process exits (an error naming what, from name), or timeout passes.
func (c *Child) WaitListening(name string, addrs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-c.done:
				return fmt.Errorf("%s exited (%v) before %s accepted connections", name, c.err, addr)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not accepting connections after %v: %v", addr, timeout, err)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	}
	return nil
}

// Stop asks the process to stop — terminate, or SIGTERM when terminate is
// nil — and waits up to timeout; then it kills the process group, which
// also ends helpers a server left behind (e.g. erl_child_setup). A process
// that had to be killed is an error.
func (c *Child) Stop(terminate func() error, timeout time.Duration) error {
	if terminate == nil {
		terminate = func() error { return c.Cmd.Process.Signal(syscall.SIGTERM) }
	}
	termErr := terminate()
	select {
	case <-c.done:
		c.killGroup()
		return nil
	case <-time.After(timeout):
		c.Kill(timeout)
		if termErr != nil {
			return fmt.Errorf("did not exit within %v of being asked to stop (%v); killed", timeout, termErr)
		}
		return fmt.Errorf("did not exit within %v of being asked to stop; killed", timeout)
	}
}

// Kill SIGKILLs the process group and waits up to timeout for the exit.
func (c *Child) Kill(timeout time.Duration) {
	c.killGroup()
	select {
	case <-c.done:
	case <-time.After(timeout):
	}
}

func (c *Child) killGroup() {
	if err := syscall.Kill(-c.Cmd.Process.Pid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) || err == nil {
		return
	}
	_ = c.Cmd.Process.Kill() // not a group leader
}
