package compose

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aidb/aidb/internal/fault"
)

// DefaultSafetyKeepWithin is how long prune keeps safety backups unless
// aidb.yaml or its flag says otherwise: 7 days.
const DefaultSafetyKeepWithin = 7 * 24 * time.Hour

// DefaultConfigName is how the embedded aidb.yaml is named in messages.
const DefaultConfigName = "(embedded) aidb.yaml"

// readConfig reads aidb.yaml: the named file, else aidb.yaml in wd, else the
// embedded default. Unknown keys are errors (a typo must not silently fall
// back to a default), with the file and line.
func readConfig(file, wd string) (string, Config, error) {
	name, content := DefaultConfigName, defaultConfig
	if file == "" {
		if _, err := os.Stat(filepath.Join(wd, "aidb.yaml")); err == nil {
			file = filepath.Join(wd, "aidb.yaml")
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", Config{}, fault.BadInput(fmt.Errorf("read aidb config: %w", err))
		}
		name, content = file, b
	}
	cfg, err := parseConfig(content)
	if err != nil {
		return "", Config{}, fault.BadInput(fmt.Errorf("aidb config %s: %w", name, err))
	}
	return name, cfg, nil
}

// parseConfig decodes aidb.yaml and fills defaults: backup_dir "backups",
// ready_timeout 60s, retention.safety_keep_within 168h; it needs at least
// one database.
func parseConfig(content []byte) (Config, error) {
	cfg := Config{BackupDir: "backups", ReadyTimeout: duration{60 * time.Second},
		Retention: RetentionConfig{SafetyKeepWithin: keepWithin{DefaultSafetyKeepWithin}}}
	dec := yaml.NewDecoder(bytes.NewReader(content))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	if len(cfg.Databases) == 0 {
		return Config{}, errors.New("no databases: list the compose services aidb manages under the databases: key")
	}
	if cfg.BackupDir == "" {
		cfg.BackupDir = "backups"
	}
	return cfg, nil
}
