package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSpec is what a process was started with, read from /proc so that it
// can be started again exactly so: same binary, arguments (listen addresses
// included), environment (secrets included, never printed), directory and
// log file.
type procSpec struct {
	argv []string
	env  []string
	dir  string
	log  string
}

func readPid(pidfile string) (int, error) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("%s does not hold a pid: %w", pidfile, err)
	}
	return pid, nil
}

func inspect(pid int) (procSpec, error) {
	var s procSpec
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return s, err
	}
	s.argv = splitNul(cmdline)
	if len(s.argv) == 0 {
		return s, fmt.Errorf("pid %d has no command line (exited?)", pid)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return s, err
	}
	s.env = splitNul(environ)
	if s.dir, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil {
		return s, err
	}
	if s.log, err = os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); err != nil {
		return s, err
	}
	return s, nil
}

func splitNul(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// restartProc kills the process a pid file names with sig, waits for it to
// go, keeps it down for down, and starts it again as it was started,
// writing the new pid to the pid file. ready, when set, must succeed before
// it returns.
func restartProc(ctx context.Context, pidfile string, sig syscall.Signal, down time.Duration, ready func(context.Context) error) error {
	pid, err := readPid(pidfile)
	if err != nil {
		return err
	}
	spec, err := inspect(pid)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(pidfile), err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	for i := 0; alive(pid); i++ {
		if i == 300 { // 30s: a process that ignores TERM gets KILL
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
	}
	return startSpec(ctx, pidfile, spec, ready)
}

func startSpec(ctx context.Context, pidfile string, spec procSpec, ready func(context.Context) error) error {
	logf, err := os.OpenFile(spec.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(spec.argv[0], spec.argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = spec.env, spec.dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", spec.argv[0], err)
	}
	go func() { _ = cmd.Wait() }() // reaped while the driver runs; init's afterwards
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		return err
	}
	if ready == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		err := ready(rctx)
		if err == nil {
			return nil
		}
		if !alive(cmd.Process.Pid) {
			return fmt.Errorf("%s exited after its restart (log: %s)", filepath.Base(spec.argv[0]), spec.log)
		}
		select {
		case <-rctx.Done():
			return fmt.Errorf("%s not ready after its restart: %w", filepath.Base(spec.argv[0]), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// restartPostgres crashes PostgreSQL (immediate shutdown: no checkpoint,
// recovery from the WAL at start) and starts it again with the options it
// ran with (postmaster.opts).
func restartPostgres(ctx context.Context, pgdata, logfile string) error {
	pid, err := readPid(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return err
	}
	pgctl := filepath.Join(filepath.Dir(exe), "pg_ctl")
	args := []string{"restart", "-D", pgdata, "-m", "immediate", "-w", "-t", "90", "-s", "-l", logfile}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 { // scripts/lib.sh runs the server as postgres when root
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", pgctl}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, pgctl, args...)
	}
	// pg_ctl's server must not hold the driver's output open.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl restart: %w: %s", err, out)
	}
	return nil
}

// errNotReady is a readiness probe's "not yet".
var errNotReady = errors.New("not ready")
