// Command smoke is the cluster smoke test's workload: `smoke serve :8080` answers every HTTP request with the
// pod's name, and `smoke get URL [WAIT]` prints what a request to URL returns, trying again for up to WAIT (a
// Go duration; a new Service or pod takes a moment to be wired) and exiting 1 if no try succeeds. A static
// stdlib-only binary, so its image is FROM scratch and the test needs no base image.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func serve(addr string) error {
	name, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "smoke %s\n", name)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func get(url string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	_, err = os.Stdout.Write(body)
	return err
}

func getWithin(url, wait string) error {
	patience, err := time.ParseDuration(wait)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(patience)
	for {
		err = get(url)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		fmt.Fprintln(os.Stderr, "smoke: trying again:", err)
		time.Sleep(500 * time.Millisecond)
	}
}

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "serve":
		err = serve(os.Args[2])
	case len(os.Args) == 3 && os.Args[1] == "get":
		err = get(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "get":
		err = getWithin(os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("usage: smoke serve ADDR | smoke get URL [WAIT]")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
}
