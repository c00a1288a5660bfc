// Command gendocs writes nscap's man pages (and optionally markdown) from
// the cobra command tree, so they are never written by hand:
//
//	go run ./internal/cli/gendocs -man docs/man [-md docs/cli]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/spf13/cobra/doc"

	"github.com/nscap/nscap/internal/cli"
)

func main() {
	manDir := flag.String("man", "", "write man pages (section 1) to `DIR`")
	mdDir := flag.String("md", "", "write markdown pages to `DIR`")
	flag.Parse()
	if *manDir == "" && *mdDir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: gendocs [-man DIR] [-md DIR]")
		os.Exit(2)
	}
	if err := run(*manDir, *mdDir); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

func run(manDir, mdDir string) error {
	root := cli.NewRootCmd(cli.NewFactory(cli.System()))
	root.DisableAutoGenTag = true // reproducible output: no generation date
	if manDir != "" {
		if err := cli.WriteManPages(root, cli.Version(), manDir); err != nil {
			return fmt.Errorf("man pages: %w", err)
		}
	}
	if mdDir != "" {
		if err := os.MkdirAll(mdDir, 0o755); err != nil {
			return err
		}
		if err := doc.GenMarkdownTree(root, mdDir); err != nil {
			return fmt.Errorf("markdown: %w", err)
		}
	}
	return nil
}
