package lifecycle

import (
	"errors"
	"fmt"
	"net"
	"time"

	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/tlscreds"
)

// loadTLS reads the TLS credentials before the app starts (step 3). With
// tls.crt and tls.key the main listener serves HTTPS, and only HTTPS;
// without them, plain HTTP. A pair that cannot serve (broken, mismatched,
// expired) stops the start, with the reason in STATUS=: serving plain HTTP
// instead would send the API token in clear where the operator meant it
// not to go.
func (d *daemon) loadTLS(main net.Listener) error {
	cert, err := d.TLS.Load()
	if errors.Is(err, tlscreds.ErrOff) {
		if !loopback(main.Addr()) {
			d.Logger.Warn("serving plain HTTP beyond this machine: the API token crosses the network in clear; give the unit tls.crt and tls.key (docs/hardening.md, \"HTTPS\")", "addr", main.Addr().String())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	d.https = true
	d.serving = "HTTPS: " + d.serving
	d.certificateInForce(cert)
	return nil
}

// reloadTLS reads the TLS credentials again, if the daemon serves HTTPS:
// new handshakes get the new certificate, and connections open already
// finish with the one they began with. Whether the reload sees new files
// depends on systemd (docs/hardening.md, "HTTPS"). It returns why a pair
// was refused; the one in force then stays.
func (d *daemon) reloadTLS() error {
	if !d.https {
		return nil
	}
	before := d.TLS.InForce()
	cert, err := d.TLS.Load()
	if err != nil {
		return err
	}
	if !cert.Leaf.Equal(before.Leaf) || cert.ClientCAs != before.ClientCAs {
		d.Logger.Info("TLS certificate loaded; new connections get it", "subject", cert.Subject(),
			"not_after", cert.Leaf.NotAfter, "client_cas", cert.ClientCAs)
	}
	d.certificateInForce(cert)
	return nil
}

// certificateInForce reports cert: in the log and metrics now, and, once
// it nears its end (tlscreds.WarnFrom), in a warning and in STATUS=. A
// certificate renewed by then is loaded by a reload or a restart, which
// sets the warning for the new one.
func (d *daemon) certificateInForce(cert tlscreds.Certificate) {
	d.Metrics.SetTLSCertificate(cert.Leaf.NotBefore, cert.Leaf.NotAfter)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.expiry != nil {
		d.expiry.Stop()
	}
	warn := func() {
		d.Logger.Warn("the TLS certificate expires soon; renew it, then reload", "subject", cert.Subject(), "not_after", cert.Leaf.NotAfter)
	}
	if left := time.Until(tlscreds.WarnFrom(cert.Leaf)); left > 0 {
		d.expiry = time.AfterFunc(left, func() {
			warn()
			d.mu.Lock()
			defer d.mu.Unlock()
			if !d.starting && !d.stopping {
				d.notify(systemd.Status(d.status()))
			}
		})
		return
	}
	warn()
}

// status is STATUS= while serving: what is served where, and the
// certificate's end once it is near.
func (d *daemon) status() string {
	if !d.https {
		return d.serving
	}
	leaf := d.TLS.InForce().Leaf
	if time.Now().Before(tlscreds.WarnFrom(leaf)) {
		return d.serving
	}
	return fmt.Sprintf("%s; the TLS certificate expires %s", d.serving, leaf.NotAfter.UTC().Format(time.RFC3339))
}

// loopback reports whether addr is on the loopback interface only.
func loopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
