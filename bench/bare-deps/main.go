// Command bare-deps is baseline (b) of bench/run.sh: the bare server of
// baseline (a), linked with every third-party package the daemon links.
// Their package initialisation then runs before main, as in the daemon,
// and the daemon's time to ready against this one is its own start-up work.
//
// The imports are not in this directory: bench/run.sh lists the daemon's
// dependencies with `go list -deps` when it runs and adds them as blank
// imports through `go build -overlay`, so that the list follows the daemon
// as it gains or drops a dependency (yours too, once the template is yours).
package main

import "example.com/daemon/bench/internal/bare"

func main() { bare.Main() }
