// Command aidb keeps an application's PostgreSQL databases alive in Docker,
// migrated, backed up and provably restorable. This package only parses
// flags, talks to people (stderr) and machines (--json on stdout), and maps
// errors to exit codes and advice (advice.go); the work is done in the
// library packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/scheduler"
	"github.com/aidb/aidb/internal/runs/oplock"
)

func main() {
	ctx, stop, broken := signalContext()
	defer stop()
	stdout, stderr := &pipeWatch{f: os.Stdout, broken: broken}, &pipeWatch{f: os.Stderr, broken: broken}
	os.Exit(profiled(func() int { return run(ctx, os.Args[1:], stdout, stderr) }))
}

// pipeWatch is stdout or stderr, telling broken when a write finds its
// reader gone (EPIPE: aidb | head once head exits).
type pipeWatch struct {
	f      *os.File
	broken func()
}

func (p *pipeWatch) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.broken()
	}
	return n, err
}

// Fd is the file's descriptor: whether it is a terminal is asked of it.
func (p *pipeWatch) Fd() uintptr { return p.f.Fd() }

// profiled runs f with a CPU profile written to $AIDB_CPUPROFILE, when
// set: what make -f Makefile.ai bench finds slow is looked at with
// go tool pprof.
func profiled(f func() int) int {
	path := os.Getenv("AIDB_CPUPROFILE")
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aidb: AIDB_CPUPROFILE: %v\n", err)
		return exitUsage
	}
	defer func() {
		if err := out.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "aidb: AIDB_CPUPROFILE: %v\n", err)
		}
	}()
	if err := pprof.StartCPUProfile(out); err != nil {
		fmt.Fprintf(os.Stderr, "aidb: AIDB_CPUPROFILE: %v\n", err)
		return exitUsage
	}
	defer pprof.StopCPUProfile()
	return f()
}

// signalError is the cause of a context cancelled by a signal.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "interrupted by " + e.sig.String() }

// signalContext is cancelled by Ctrl-C (SIGINT), SIGTERM or SIGHUP (the
// terminal closed), with the signal as its cause, and by its third
// result, called when stdout or stderr has lost its reader (SIGPIPE as the
// cause): the exit code says which (130, 143, 129, 141). Each stops the
// run as Ctrl-C does, so what it started (pipes, helper containers, lock
// and partial files) is cleared at once; left to Go, SIGHUP and a write to
// a closed stdout would kill the process where it stands. Cleanup runs
// under contexts that are not cancelled.
//
// SIGPIPE itself is caught and dropped: Go then hands a write to a closed
// stdout or stderr its EPIPE error (pipeWatch sees it) instead of killing
// the process, and the SIGPIPEs a reset socket raises (a server still
// starting closes its connections) stop nothing. A caught signal is reset
// for the programs aidb runs, which see SIGPIPE as usual.
func signalContext() (context.Context, func(), func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-pipe:
			case <-done:
				return
			}
		}
	}()
	go func() {
		if sig, ok := <-ch; ok {
			cancel(signalError{sig})
		}
	}()
	broken := func() { cancel(signalError{syscall.SIGPIPE}) }
	return ctx, func() { signal.Stop(ch); signal.Stop(pipe); close(done); cancel(nil) }, broken
}

// signalExit is the exit code for a run stopped by sig (128 + its number,
// as shells report it) and how to say so.
func signalExit(sig os.Signal) (int, string) {
	switch sig {
	case syscall.SIGTERM:
		return exitTerminated, "stopped by SIGTERM"
	case syscall.SIGHUP:
		return exitHangup, "stopped by SIGHUP (the terminal went away)"
	case syscall.SIGPIPE:
		return exitBrokenPipe, "stopped: the reader of its output went away (SIGPIPE)"
	}
	return exitInterrupted, "interrupted"
}

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := &app{stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	// What was asked for (--help, --version, completion scripts and
	// __complete's answers) goes to stdout; cobra's messages to stderr.
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	var usage *usageError
	if errors.As(err, &usage) {
		code = exitUsage
	}
	if ctx.Err() != nil {
		code = exitInterrupted
		what := "interrupted"
		var sig signalError
		if errors.As(context.Cause(ctx), &sig) {
			code, what = signalExit(sig.sig)
		}
		undone := "what this run had started was stopped, and any partial work undone"
		if errors.Is(err, scheduler.ErrStoppedIdle) {
			undone = "it was waiting for its next run: nothing was running, nothing to undo"
		}
		fmt.Fprintf(stderr, "aidb: %s; %s\n", what, undone)
		return code
	}
	fmt.Fprint(stderr, errorText(err))
	return code
}

// usageError marks a command-line mistake cobra reports (unknown flag,
// wrong argument count): exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() + " (see aidb --help)" }
func (e *usageError) Unwrap() error { return e.err }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "aidb",
		Short: "Keep PostgreSQL databases in Docker alive, migrated, backed up and provably restorable",
		Long: `aidb runs the databases of a compose project (by default rulesdb and memorydb)
on the Docker engine, and backs them up and restores them with proof.

Exit codes: 0 ok, 1 operation failed, 2 bad usage or input (nothing changed),
3 verification found a difference, 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP,
141 its output's reader gone (| head). Through make every failure is
make's exit 2: call aidb itself where the code matters.

Requested output (--help, --version, completion, --json) goes to stdout;
messages and progress go to stderr.`,
		Version:       toolVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("aidb {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if a.lockTimeout <= 0 {
			return fault.BadInput(fmt.Errorf("--lock-timeout %s: must be positive", a.lockTimeout))
		}
		return nil
	}
	f := root.PersistentFlags()
	f.StringVarP(&a.composeFile, "file", "f", "", "compose file (default: AIDB_COMPOSE_FILE, else compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml in this folder or the nearest above it that has one, else the embedded default)")
	f.StringVar(&a.configFile, "config", "", "aidb.yaml (default: AIDB_CONFIG, else ./aidb.yaml, else the embedded default)")
	f.BoolVar(&a.json, "json", false, "print one JSON document on stdout")
	f.BoolVar(&a.yes, "yes", false, "do not ask before removing or replacing data")
	f.DurationVar(&a.lockTimeout, "lock-timeout", oplock.DefaultTimeout, "how long to wait for another aidb operation on the same database or backup folder")
	root.AddCommand(a.upCommand(), a.downCommand(), a.nukeCommand(), a.statusCommand(), a.imageCommand(), a.migrateCommand(), a.seedCommand(), a.backupCommand(), a.listCommand(), a.checkCommand(), a.docsCommand(), a.serveCommand(), a.pruneCommand(), a.pushCommand(), a.pullCommand(), a.restoreCommand(), a.verifyCommand(), a.upgradeCommand(), a.initCommand(),
		a.snapshotCommand(), a.resetCommand(), a.cloneCommand(), a.pitrCommand())
	requireSubcommand(root)
	return root
}

// requireSubcommand makes a command that only groups others (the root,
// image) refuse an unknown subcommand as bad usage (exit 2; cobra's own
// check returns a plain error, exit 1), and print its help when named
// alone. It applies to the whole tree.
func requireSubcommand(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireSubcommand(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's default for its own message
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
		}
		return &usageError{errors.New(msg)}
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// args wraps a cobra argument validator so its errors exit 2.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}
