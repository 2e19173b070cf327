// Command rivet-gateway is an authenticating reverse proxy for Rivet
// actors: it proxies every RivetKit client route to a Rivet Engine,
// authenticates each request and WebSocket, and injects server-side
// connection params.
//
//	rivet-gateway -config config.yaml                      run
//	rivet-gateway -config config.yaml -check               check the config: every problem, then warnings
//	rivet-gateway -config config.yaml -check -skip-files   the same without opening referenced files
//	rivet-gateway -version                                 print the version
//
// Exit codes: 0 valid (warnings allowed) or stopped cleanly, 1 invalid
// configuration or failure, 2 bad command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/gateway"
	"github.com/rivet-gateway/rivet-gateway/proxy"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes of run.
const (
	exitOK      = 0
	exitInvalid = 1 // an invalid configuration, or the gateway failed
	exitUsage   = 2
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rivet-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.yaml", "path to the YAML configuration file")
	check := fs.Bool("check", false, "check the configuration, print every problem and then the warnings, and exit: 0 valid, 1 invalid")
	skipFiles := fs.Bool("skip-files", false, "with -check: do not open the files the configuration references (*_file keys,\napi_keys.file, header_files), e.g. in the CI of a config repository without the secrets;\neverything else is checked")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // flag printed the error and the usage
	}
	if fs.NArg() > 0 {
		// flag stops at the first argument that is not a flag, so
		// "rivet-gateway config.yaml -check" would run the gateway with
		// the default config and ignore -check.
		hint := ""
		if a := fs.Arg(0); strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml") {
			hint = fmt.Sprintf(" (did you mean -config %s?)", a)
		}
		fmt.Fprintf(stderr, "unexpected argument %q%s: rivet-gateway takes flags only, before any argument\n", fs.Arg(0), hint)
		fs.Usage()
		return exitUsage
	}
	if *skipFiles && !*check {
		fmt.Fprintln(stderr, "-skip-files goes with -check: the gateway needs its files to run")
		fs.Usage()
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "rivet-gateway", buildVersion())
		return exitOK
	}
	cfg, err := gateway.CheckConfig(*configPath, gateway.CheckOptions{SkipFiles: *skipFiles})
	if *check {
		return report(*configPath, cfg, err, *skipFiles, stdout, stderr)
	}
	if err != nil {
		printProblems(stderr, *configPath, err)
		return exitInvalid
	}
	logger, err := gateway.NewLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitInvalid
	}
	// koding/websocketproxy logs through the standard logger.
	log.SetFlags(0)
	log.SetOutput(proxy.StdLogWriter(logger))

	if err := serve(*configPath, cfg, logger); err != nil {
		logger.Error("gateway stopped", "error", err)
		return exitInvalid
	}
	return exitOK
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `Usage:
  rivet-gateway [-config FILE]                        run the gateway
  rivet-gateway [-config FILE] -check [-skip-files]   check the configuration and exit
  rivet-gateway -version                              print the version and exit

Exit codes: 0 valid (warnings allowed), 1 invalid configuration or failure, 2 bad command line.

Flags:
`)
	fs.PrintDefaults()
}

// report prints what -check found: every problem (each once, with its
// path and line, sorted by line), then the warnings, then the files left
// unchecked by -skip-files. A valid configuration goes to stdout, an
// invalid one to stderr, all of it in one stream so it reads in order.
func report(path string, cfg gateway.Config, err error, skippedFiles bool, stdout, stderr io.Writer) int {
	var ps config.Problems
	if err != nil && !errors.As(err, &ps) {
		// Unreadable, or not YAML: nothing was decoded, so there is
		// nothing to warn about.
		printProblems(stderr, path, err)
		return exitInvalid
	}
	w, code := stdout, exitOK
	warnings := cfg.Warnings()
	if err != nil {
		w, code = stderr, exitInvalid
		printProblems(w, path, err)
	} else {
		fmt.Fprintf(w, "%s: configuration is valid%s\n", path, count(len(warnings), ", with %d warning"))
	}
	for _, s := range warnings {
		fmt.Fprintf(w, "  warning: %s\n", s)
	}
	if skippedFiles {
		files := cfg.Files()
		if len(files) == 0 {
			fmt.Fprintf(w, "%s: references no files (-skip-files skipped none)\n", path)
		} else {
			fmt.Fprintf(w, "%s: %s not checked (-skip-files):\n", path, count(len(files), "%d referenced file"))
		}
		for _, f := range files {
			fmt.Fprintf(w, "  %s: %s\n", f.Path, f.File)
		}
	}
	return code
}

// printProblems prints err, the problems of the file at path, one per
// line.
func printProblems(w io.Writer, path string, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		fmt.Fprintf(w, "%s: invalid configuration, %s:\n", path, count(len(ps), "%d problem"))
	} else {
		fmt.Fprintf(w, "%s: invalid configuration:\n", path)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// count formats n with format (one %d) and an "s" when n is not 1; "" for
// 0.
func count(n int, format string) string {
	switch n {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf(format, n)
	}
	return fmt.Sprintf(format, n) + "s"
}

// reloadOn reloads g from path on SIGHUP and, when watch is set, when the
// file or one it references changes. The returned func stops both and
// waits for them.
func reloadOn(g *gateway.Gateway, path string, watch bool, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP received, reloading the configuration", "path", path)
				_ = g.Reload(path, gateway.TriggerSignal) // logged and counted by Reload
			}
		}
	})
	if watch {
		wg.Go(func() {
			if err := g.Watch(ctx, path); err != nil {
				logger.Error("not watching the configuration for changes; SIGHUP still reloads", "error", err)
			}
		})
	}
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

func serve(path string, cfg gateway.Config, logger *slog.Logger) error {
	g, err := gateway.New(cfg, logger, gateway.Options{Version: buildVersion()})
	if err != nil {
		return err
	}
	pub, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		g.Close()
		return err
	}
	var adm net.Listener
	if cfg.Admin.Listen != "" {
		if adm, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			pub.Close()
			g.Close()
			return err
		}
	}
	logger.Info("rivet-gateway listening", "version", buildVersion(), "public", pub.Addr().String(),
		"admin", addrOf(adm), "upstream", redactURL(cfg.Upstream.URL))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- g.Serve(pub, adm) }()
	stopReload := reloadOn(g, path, cfg.Reload.Watch, logger)
	defer stopReload()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills the process the default way
	logger.Info("signal received, shutting down", "drain_delay", cfg.Server.DrainDelay.String(), "timeout", cfg.Server.ShutdownTimeout.String())
	g.Drain(context.Background())
	err = g.Shutdown(context.Background())
	if serr := <-done; serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return err
	}
	logger.Info("shutdown complete")
	return nil
}

func addrOf(l net.Listener) string {
	if l == nil {
		return "disabled"
	}
	return l.Addr().String()
}

// redactURL keeps scheme and host: a URL may carry credentials.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if j := strings.LastIndexByte(rest, '@'); j >= 0 {
			rest = rest[j+1:]
		}
		return s[:i+3] + rest
	}
	return "(invalid)"
}
