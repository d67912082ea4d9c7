package main
import (
 _ "github.com/coreos/go-systemd/v22/daemon"
 _ "github.com/coreos/go-systemd/v22/activation"
 _ "github.com/coreos/go-systemd/v22/journal"
 _ "github.com/pelletier/go-toml/v2"
 _ "github.com/ssgreg/journald"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/promhttp"
 _ "github.com/prometheus/client_golang/prometheus/testutil"
 _ "github.com/prometheus/client_golang/prometheus/collectors"
 _ "github.com/systemd/slog-journal"
 _ "golang.org/x/sys/unix"
)
func main(){}
