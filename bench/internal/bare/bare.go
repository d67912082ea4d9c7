// Package bare is the baseline the daemon is measured against: the least a
// socket-activated HTTP service under systemd does. It takes the listening
// socket systemd passes as file descriptor 3, serves GET of one path with the bytes
// the daemon answers, says READY=1, answers SIGHUP with RELOADING=1 and
// READY=1, and exits on SIGTERM.
//
// It uses the standard library alone, and nothing the daemon adds: no
// configuration, no metrics, no logger, no connection tracking, no server
// timeouts. What the daemon measures beyond it is the price of those.
//
// The timeouts alone can be added, to tell their price from the rest:
// BARE_READ_HEADER_TIMEOUT, BARE_READ_TIMEOUT, BARE_WRITE_TIMEOUT and
// BARE_IDLE_TIMEOUT set the http.Server fields of those names (the bench
// driver passes the daemon's values).
package bare

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// What it answers: GET $BARE_PATH with $BARE_BODY, which the driver sets
// to the path it measures and what the daemon answers there, so that both
// send the same bytes.

// Main runs the baseline until SIGTERM or SIGINT.
func Main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bare: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	// sd_listen_fds(3), reduced to what the benchmark passes: one socket,
	// file descriptor 3, meant for this process.
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) || os.Getenv("LISTEN_FDS") != "1" {
		return errors.New("want one socket passed in: LISTEN_FDS=1 and LISTEN_PID=<this pid>")
	}
	f := os.NewFile(3, os.Getenv("LISTEN_FDNAMES"))
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("socket activation: %w", err)
	}
	notifySocket := os.Getenv("NOTIFY_SOCKET")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)

	body := os.Getenv("BARE_BODY")
	pattern := "GET " + os.Getenv("BARE_PATH")
	if strings.HasSuffix(pattern, "/") {
		pattern += "{$}" // that path alone, not all below it
	}
	mux := http.NewServeMux()
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, body)
	})
	srv := &http.Server{Handler: mux}
	for name, field := range map[string]*time.Duration{
		"BARE_READ_HEADER_TIMEOUT": &srv.ReadHeaderTimeout,
		"BARE_READ_TIMEOUT":        &srv.ReadTimeout,
		"BARE_WRITE_TIMEOUT":       &srv.WriteTimeout,
		"BARE_IDLE_TIMEOUT":        &srv.IdleTimeout,
	} {
		if v := os.Getenv(name); v != "" {
			if *field, err = time.ParseDuration(v); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	// BARE_TLS_CERT and BARE_TLS_KEY, PEM files, make it serve HTTPS with
	// crypto/tls's defaults, as the TLS phase of the benchmark compares.
	if cert := os.Getenv("BARE_TLS_CERT"); cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, os.Getenv("BARE_TLS_KEY"))
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}})
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if err := notify(notifySocket, "READY=1"); err != nil {
		return err
	}
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				if err := notify(notifySocket, "RELOADING=1\nMONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10)); err != nil {
					return err
				}
				if err := notify(notifySocket, "READY=1"); err != nil {
					return err
				}
				continue
			}
		case err := <-served:
			return err
		}
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// notify sends one sd_notify(3) datagram the way the daemon does: a fresh
// connection per message.
func notify(socket, msg string) error {
	if socket == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC=;
// the syscall package has no clock_gettime of its own.
func monotonicUsec() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0 // cannot fail for CLOCK_MONOTONIC; systemd ignores a 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}
