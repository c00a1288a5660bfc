// Command nscap reads and writes namespaced Linux file capabilities.
// Everything happens in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/nscap/nscap/internal/cli"
	"github.com/nscap/nscap/userns"
)

func main() {
	// When re-executed as a helper inside another user namespace, serve
	// the helper protocol and exit; otherwise this returns at once.
	userns.HelperMain()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli.Main(ctx, os.Args[1:], cli.System())
	stop()
	os.Exit(int(code))
}
