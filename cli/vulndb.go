package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// vulnDBModule is the Go module that carries the Go vulnerability database
// as OSV files: the Go module proxy serves it, so a machine that reaches no
// other site can still have the database.
const vulnDBModule = "golang.org/x/vulndb"

func (a *app) vulndbCommand() *cobra.Command {
	var version string
	update := &cobra.Command{
		Use:   "update",
		Short: "Fetch the Go vulnerability database into the state dir, through the Go module proxy",
		Long: `update downloads the module golang.org/x/vulndb (the Go vulnerability
database as OSV files) through the Go module proxy and keeps its entries in
$ULTRAMCP_HOME/vulndb, which govulncheck then reads instead of vuln.go.dev
(unless ULTRAMCP_VULNDB says otherwise). Run it again to refresh; restart
the service (ultramcp restart) to use it.`,
		Example: `  ultramcp vulndb update`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stderr, "downloading %s@%s through the Go module proxy…\n", vulnDBModule, version)
			dl := exec.CommandContext(cmd.Context(), "go", "mod", "download", "-json", vulnDBModule+"@"+version)
			dl.Env = append(os.Environ(), "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local")
			dl.Dir = os.TempDir() // outside any module
			out, err := dl.Output()
			var mod struct{ Version, Dir, Error string }
			if jerr := json.Unmarshal(out, &mod); jerr != nil || mod.Error != "" || err != nil {
				return fmt.Errorf("download %s: %v %s", vulnDBModule, err, strings.TrimSpace(mod.Error))
			}
			entries, err := filepath.Glob(filepath.Join(mod.Dir, "data", "osv", "*.json"))
			if err != nil || len(entries) == 0 {
				return fmt.Errorf("%s@%s holds no OSV entries under data/osv", vulnDBModule, mod.Version)
			}
			dst := a.cfg.VulnDBDir()
			tmp := dst + ".new"
			_ = os.RemoveAll(tmp)
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				return err
			}
			for _, e := range entries {
				b, err := os.ReadFile(e)
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(tmp, filepath.Base(e)), b, 0o600); err != nil {
					return err
				}
			}
			_ = os.RemoveAll(dst)
			if err := os.Rename(tmp, dst); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "vulndb: %d entries from %s@%s in %s\n", len(entries), vulnDBModule, mod.Version, dst)
			return nil
		},
	}
	update.Flags().StringVar(&version, "version", "latest", "version of "+vulnDBModule)
	cmd := &cobra.Command{
		Use:   "vulndb",
		Short: "The local copy of the Go vulnerability database that govulncheck reads",
	}
	cmd.AddCommand(update)
	return cmd
}
