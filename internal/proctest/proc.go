package proctest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a child process that can be killed and started again with the
// same command line; its output goes to one log file across restarts. It
// dies with the test binary (Pdeathsig) and is stopped (SIGTERM, then
// SIGKILL) when the test ends.
type Proc struct {
	Name    string
	Args    []string
	LogPath string
	// LogLabel goes into the line each start writes to the log:
	// "=== <LogLabel>start #N at <time> ===".
	LogLabel string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returned
	exitErr error
	starts  int
	killed  bool // the last exit was asked for
}

// NewProc prepares a process; Start runs it.
func NewProc(t testing.TB, name, logPath string, args ...string) *Proc {
	p := &Proc{Name: name, Args: args, LogPath: logPath}
	t.Cleanup(func() {
		if d, err := p.Stop(15 * time.Second); err != nil {
			t.Errorf("%s: %v (after %v)", name, err, d)
		}
	})
	return p
}

// Start runs the command (again).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.exited) {
		return fmt.Errorf("%s already running", p.Name)
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	p.starts++
	fmt.Fprintf(f, "=== %sstart #%d at %s ===\n", p.LogLabel, p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.killed = cmd, exited, false
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Signal sends sig and waits up to timeout for the exit (then kills).
func (p *Proc) Signal(sig syscall.Signal, timeout time.Duration) (time.Duration, error) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	if cmd == nil || isClosed(exited) {
		p.mu.Unlock()
		return 0, nil
	}
	p.killed = true
	p.mu.Unlock()
	began := time.Now()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return time.Since(began), nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return time.Since(began), fmt.Errorf("did not exit within %v of %v; killed", timeout, sig)
	}
}

// Kill is kill -9.
func (p *Proc) Kill() error {
	_, err := p.Signal(syscall.SIGKILL, 10*time.Second)
	return err
}

// Stop is an orderly stop (SIGTERM) within timeout.
func (p *Proc) Stop(timeout time.Duration) (time.Duration, error) {
	return p.Signal(syscall.SIGTERM, timeout)
}

// Crashed reports an exit nobody asked for, with its error.
func (p *Proc) Crashed() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || !isClosed(p.exited) || p.killed {
		return false, nil
	}
	return true, p.exitErr
}

// Running reports whether the process runs.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.exited)
}

// Pid is the current process' id, 0 when none runs.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.exited) {
		return 0
	}
	return p.cmd.Process.Pid
}

// LogTail returns the last n lines of the log.
func (p *Proc) LogTail(n int) string {
	lines := p.LogLines(func(string) bool { return true })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogLines returns the log lines for which keep is true.
func (p *Proc) LogLines(keep func(string) bool) []string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if keep(sc.Text()) {
			out = append(out, sc.Text())
		}
	}
	return out
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
