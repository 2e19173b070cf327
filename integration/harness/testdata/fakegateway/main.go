// Command fakegateway stands in for rivet-gateway in the harness's own tests: it takes the same
// flags and config keys the harness relies on, answers GET /healthz on the admin listener and
// reverse-proxies everything (HTTP and WebSocket) on the public listener to upstream.url. It
// exits 0 on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"gopkg.in/yaml.v3"
)

// config is the subset of the rivet-gateway config the fake understands.
type config struct {
	Server struct {
		Listen string `yaml:"listen"`
	} `yaml:"server"`
	Admin struct {
		Listen string `yaml:"listen"`
	} `yaml:"admin"`
	Upstream struct {
		URL string `yaml:"url"`
	} `yaml:"upstream"`
	// ExitCode, if set, makes the fake exit with it right after start (tests of failure paths).
	ExitCode int `yaml:"exit_code"`
}

func main() {
	path := flag.String("config", "", "config file")
	version := flag.Bool("version", false, "print version and exit")
	flag.Parse()
	if *version {
		fmt.Println("fakegateway test")
		return
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		log.Fatal(err)
	}
	var cfg config
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		log.Fatal(err)
	}
	if cfg.ExitCode != 0 {
		log.Printf("exiting with %d as configured", cfg.ExitCode)
		os.Exit(cfg.ExitCode)
	}
	target, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		log.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	public := &http.Server{Addr: cfg.Server.Listen, Handler: proxy}
	adminMux := http.NewServeMux()
	adminMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	admin := &http.Server{Addr: cfg.Admin.Listen, Handler: adminMux}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 2)
	for _, srv := range []*http.Server{public, admin} {
		go func() { errc <- srv.ListenAndServe() }()
	}
	log.Printf("listening on %s (admin %s), upstream %s", cfg.Server.Listen, cfg.Admin.Listen, target)
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	log.Printf("shutting down")
	public.Shutdown(context.Background())
	admin.Shutdown(context.Background())
}
