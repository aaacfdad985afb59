package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/aidb/aidb/internal/fault"
)

// docsCommand writes the manual pages of every command (cobra's doc
// generator), for `man aidb-backup` and friends.
func (a *app) docsCommand() *cobra.Command {
	docs := &cobra.Command{
		Use:   "docs",
		Short: "Write aidb's documentation: manual pages",
		Args:  args(cobra.NoArgs),
	}
	docs.AddCommand(&cobra.Command{
		Use:   "man DIR",
		Short: "Write a manual page for each command into DIR (aidb.1, aidb-backup.1, …)",
		Long: `Write a manual page (section 1) for aidb and each of its commands into DIR,
creating it if needed. Install them where man finds them, e.g.:

  aidb docs man ~/.local/share/man/man1 && man aidb-backup`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			dir := argv[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fault.BadInput(fmt.Errorf("man pages: %w", err))
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "AIDB", Section: "1", Source: "aidb " + toolVersion(), Manual: "aidb manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("write man pages into %s: %w", dir, err)
			}
			a.say("wrote the manual pages into %s", dir)
			return nil
		},
	})
	return docs
}
