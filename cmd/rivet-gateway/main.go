// Command rivet-gateway is an authenticating reverse proxy for Rivet
// actors: it proxies every RivetKit client route to a Rivet Engine,
// authenticates each request and WebSocket, and injects server-side
// connection params.
//
//	rivet-gateway -config config.yaml         run
//	rivet-gateway -config config.yaml -check  validate the config, print warnings, and exit
//	rivet-gateway -version                    print the version
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

	"github.com/rivet-gateway/rivet-gateway/gateway"
	"github.com/rivet-gateway/rivet-gateway/proxy"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rivet-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.yaml", "path to the YAML configuration file")
	check := fs.Bool("check", false, "validate the configuration, print every problem, and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "rivet-gateway", buildVersion())
		return 0
	}
	cfg, err := gateway.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n", *configPath)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration is valid\n", *configPath)
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stdout, "  warning: %s\n", w)
		}
		return 0
	}
	logger, err := gateway.NewLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// koding/websocketproxy logs through the standard logger.
	log.SetFlags(0)
	log.SetOutput(proxy.StdLogWriter(logger))

	if err := serve(*configPath, cfg, logger); err != nil {
		logger.Error("gateway stopped", "error", err)
		return 1
	}
	return 0
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
