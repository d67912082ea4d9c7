// Command bare is baseline (a) of bench/run.sh: a socket-activated net/http
// server with nothing of the daemon's own (see bench/internal/bare).
package main

import "example.com/daemon/bench/internal/bare"

func main() { bare.Main() }
