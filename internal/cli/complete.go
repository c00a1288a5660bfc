package cli

import (
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagValues are the values shell completion offers for the flags of
// every command that has them, by flag name. Values with a description
// are written "value\tdescription", as cobra's completion expects.
var flagValues = map[string][]string{
	"helper":       {"auto\tthe helper only when it is needed", "always\talways a helper user namespace", "never\tno helper user namespace"},
	"foreign-caps": {"fail\tstop at a cap of a namespace outside the map", "skip\tleave such caps out", "host\tkeep them host-scoped"},
	"compress":     {"none", "gzip", "zstd", "xz"},
	"overwrite":    {"always\treplace existing entries", "if-changed\treplace when size or mtime differ", "never\tkeep existing entries"},
}

// pidFlags are the flags whose value is a process id: completion lists
// the processes of /proc.
var pidFlags = []string{"pid", "from-pid", "to-pid"}

// registerCompletions registers the flag value completions of every
// command of the tree under cmd.
func registerCompletions(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		switch {
		case flagValues[fl.Name] != nil:
			vals := flagValues[fl.Name]
			_ = cmd.RegisterFlagCompletionFunc(fl.Name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
				return vals, cobra.ShellCompDirectiveNoFileComp
			})
		case isPIDFlag(fl.Name):
			_ = cmd.RegisterFlagCompletionFunc(fl.Name, completePIDs)
		}
	})
	for _, c := range cmd.Commands() {
		registerCompletions(c)
	}
}

func isPIDFlag(name string) bool {
	for _, p := range pidFlags {
		if name == p {
			return true
		}
	}
	return false
}

// completePIDs offers the ids of the processes in /proc that start with
// what was typed, each with its command name as the description.
func completePIDs(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var pids []string
	for _, e := range ents {
		name := e.Name()
		if _, err := strconv.ParseUint(name, 10, 32); err != nil || !strings.HasPrefix(name, toComplete) {
			continue
		}
		if comm, err := os.ReadFile("/proc/" + name + "/comm"); err == nil {
			name += "\t" + strings.TrimSpace(string(comm))
		}
		pids = append(pids, name)
	}
	return pids, cobra.ShellCompDirectiveNoFileComp
}
