// Package compose loads what aidb manages: the compose file (the source of
// truth for services: image, environment, volumes, ports, healthcheck) and
// aidb.yaml (which services are databases, their migrations, the backup
// folder), each from the embedded default or a file the user names.
package compose

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/aidb/aidb/internal/fault"
)

//go:embed docker-compose.yaml
var defaultCompose []byte

//go:embed aidb.yaml
var defaultConfig []byte

// DefaultComposeName is how the embedded compose file is named in messages.
const DefaultComposeName = "(embedded) docker-compose.yaml"

// PostgresPort is the port PostgreSQL listens on inside its container.
const PostgresPort = 5432

// Options says where to load from. Zero values mean the embedded defaults and
// the current directory.
type Options struct {
	// ComposeFile is the compose file; empty: with Discover, the one
	// Docker Compose would use (FindComposeFile, from WorkingDir or the
	// current directory up), else the embedded default.
	ComposeFile string
	// Discover looks for the project's own compose file when ComposeFile
	// is empty, as docker compose does, from WorkingDir (else the current
	// directory) up; the folder of the file it finds is the project's.
	Discover bool
	// ConfigFile is aidb.yaml; empty: aidb.yaml in WorkingDir if present,
	// else the embedded default.
	ConfigFile string
	// WorkingDir resolves relative paths and holds .env; empty: the compose
	// file's folder, or the current directory for the embedded default.
	WorkingDir string
	// Env is the environment (KEY=VALUE) for interpolation and aidb's own
	// variables (AIDB_PROJECT, AIDB_BACKUP_DIR). It wins over .env, as in
	// Docker Compose.
	Env []string
	// Profiles are the compose profiles to enable (aidb up --profile);
	// empty: COMPOSE_PROFILES from Env or .env, as in Docker Compose.
	// The databases aidb.yaml names are enabled whatever their profiles.
	Profiles []string
}

// Project is a loaded compose project with aidb's settings.
type Project struct {
	// Name namespaces containers, volumes, networks and labels.
	Name string
	// ComposeFile names where services came from (a path or DefaultComposeName).
	ComposeFile string
	// ConfigFile names where aidb's settings came from.
	ConfigFile string
	// WorkingDir is the folder relative paths are resolved against.
	WorkingDir string
	// BackupDir is the absolute backup folder.
	BackupDir string
	// ReadyTimeout bounds the wait for a database to answer SELECT 1.
	ReadyTimeout time.Duration
	// SafetyKeepWithin is how long prune keeps safety backups (aidb.yaml
	// retention.safety_keep_within, default 7 days).
	SafetyKeepWithin time.Duration
	// Keep is aidb.yaml's retention keep rules (retention.keep_last,
	// keep_hourly, ...); all 0 when it gives none.
	Keep KeepRules
	// PITRKeepWindow is aidb.yaml's retention.pitr_keep_window: the
	// recovery window serve keeps (0: none, serve prunes no WAL).
	PITRKeepWindow time.Duration
	// Repository is the backup repository's URL (AIDB_REPOSITORY, else
	// aidb.yaml repository), "" for none; RepositoryFrom names which of
	// the two gave it, for messages. It is parsed by package repository.
	Repository, RepositoryFrom string
	// AgeRecipientsFile and AgeIdentityFile are the age recipients new
	// backups are encrypted to (AIDB_AGE_RECIPIENTS_FILE) and the
	// identities encrypted ones are decrypted with (AIDB_AGE_IDENTITY_FILE);
	// "" for none. They are read by package encryption.
	AgeRecipientsFile, AgeIdentityFile string
	// Databases in name order.
	Databases []Database
	// Compose is the whole compose model, services included.
	Compose *types.Project
}

// Database is one PostgreSQL service aidb manages.
type Database struct {
	// Name is aidb's name for it (rulesdb, memorydb).
	Name string
	// Service is the compose service running it.
	Service string
	// Migrations is the migration folder; empty: the embedded default set.
	Migrations string
	// Image is the configured image, e.g. postgres:15.
	Image string
	// User, Password and DBName come from POSTGRES_USER, POSTGRES_PASSWORD
	// and POSTGRES_DB, with the official image's defaults.
	User, Password, DBName string
	// HostIP and HostPort are where PostgreSQL is published on the host;
	// HostPort 0 means not published.
	HostIP   string
	HostPort int
	// DataMount is the container path of the data volume (PGDATA's parent or
	// PGDATA itself); empty when the service has no named volume.
	DataMount string
	// EnvVars maps an environment key of the service (POSTGRES_PASSWORD) to
	// the variables the compose file interpolates it from
	// (RULESDB_PASSWORD), for messages that say what to change.
	EnvVars map[string][]string
	// ImageVars are the variables the compose file interpolates the
	// service's image from (image: postgres:${RULESDB_PG:-15} gives
	// RULESDB_PG), sorted; none when it writes the image out.
	ImageVars []string
}

// Select returns the named databases, or all of them for no names. An
// unknown name is bad input: the error lists the known ones.
func (p *Project) Select(names []string) ([]Database, error) {
	if len(names) == 0 {
		return p.Databases, nil
	}
	var out []Database
	for _, n := range names {
		db, ok := p.Database(n)
		if !ok {
			return nil, fault.BadInput(fmt.Errorf("unknown database %q: known databases are %s (from %s)", n, strings.Join(p.DatabaseNames(), ", "), p.ConfigFile))
		}
		out = append(out, db)
	}
	return out, nil
}

// Database returns the database with the given name.
func (p *Project) Database(name string) (Database, bool) {
	for _, db := range p.Databases {
		if db.Name == name {
			return db, true
		}
	}
	return Database{}, false
}

// DatabaseNames lists the databases' names in order.
func (p *Project) DatabaseNames() []string {
	names := make([]string, len(p.Databases))
	for i, db := range p.Databases {
		names[i] = db.Name
	}
	return names
}

// Service returns the compose service of the given name.
func (p *Project) Service(name string) (types.ServiceConfig, bool) {
	s, err := p.Compose.GetService(name)
	return s, err == nil
}

// newProject is the project of compose project cp and aidb config cfg,
// without its databases: its settings, from cfg under the environment's.
func newProject(cp *types.Project, composeName, cfgName, wd string, cfg Config, env map[string]string) *Project {
	p := &Project{
		Name:             cp.Name,
		ComposeFile:      composeName,
		ConfigFile:       cfgName,
		WorkingDir:       wd,
		ReadyTimeout:     cfg.ReadyTimeout.Duration,
		SafetyKeepWithin: cfg.Retention.SafetyKeepWithin.Duration,
		PITRKeepWindow:   cfg.Retention.PITRKeepWindow.Duration,
		Keep: KeepRules{Last: cfg.Retention.KeepLast.n, Hourly: cfg.Retention.KeepHourly.n, Daily: cfg.Retention.KeepDaily.n,
			Weekly: cfg.Retention.KeepWeekly.n, Monthly: cfg.Retention.KeepMonthly.n, Yearly: cfg.Retention.KeepYearly.n},
		Compose: cp,
	}
	if cfg.Repository != "" {
		p.Repository, p.RepositoryFrom = cfg.Repository, cfgName+" repository"
	}
	p.AgeRecipientsFile, p.AgeIdentityFile = env["AIDB_AGE_RECIPIENTS_FILE"], env["AIDB_AGE_IDENTITY_FILE"]
	if v := env["AIDB_REPOSITORY"]; v != "" {
		p.Repository, p.RepositoryFrom = v, "AIDB_REPOSITORY"
	}
	p.BackupDir = cfg.BackupDir
	if v := env["AIDB_BACKUP_DIR"]; v != "" {
		p.BackupDir = v
	}
	if !filepath.IsAbs(p.BackupDir) {
		p.BackupDir = filepath.Join(wd, p.BackupDir)
	}
	return p
}

// discover is opts with the compose file FindComposeFile finds from the
// working directory, when opts asks for discovery and names none.
func discover(opts Options) (Options, error) {
	if opts.ComposeFile != "" || !opts.Discover {
		return opts, nil
	}
	from := opts.WorkingDir
	if from == "" {
		var err error
		if from, err = os.Getwd(); err != nil {
			return opts, err
		}
	}
	found, err := FindComposeFile(from)
	if err != nil {
		return opts, err
	}
	if found != "" {
		// The project's folder is then the file's, as in Compose.
		opts.ComposeFile, opts.WorkingDir = found, ""
	}
	return opts, nil
}

// addDotEnv adds to env the variables of .env in the working directory wd
// that env does not set: .env is under the process environment, as Docker
// Compose has it (COMPOSE_DISABLE_ENV_FILE turns it off).
func addDotEnv(env map[string]string, wd string) error {
	dotEnv := filepath.Join(wd, ".env")
	if env["COMPOSE_DISABLE_ENV_FILE"] != "" {
		return nil
	}
	st, err := os.Stat(dotEnv)
	if err != nil || st.IsDir() {
		return nil
	}
	fromFile, err := dotenv.GetEnvFromFile(env, []string{dotEnv})
	if err != nil {
		return fault.BadInput(fmt.Errorf("read %s: %w", dotEnv, err))
	}
	for k, v := range fromFile {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return nil
}

var projectNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Load reads the compose file and aidb.yaml. Every problem with them is bad
// input (fault.Invalid) naming the file, and the line where known.
func Load(ctx context.Context, opts Options) (*Project, error) {
	env := envMap(opts.Env)
	opts, err := discover(opts)
	if err != nil {
		return nil, err
	}
	wd, err := workingDir(opts)
	if err != nil {
		return nil, err
	}

	composeName, content := DefaultComposeName, defaultCompose
	if opts.ComposeFile != "" {
		composeName = opts.ComposeFile
		if content, err = os.ReadFile(opts.ComposeFile); err != nil {
			return nil, fault.BadInput(fmt.Errorf("read compose file: %w", err))
		}
	}

	if err := addDotEnv(env, wd); err != nil {
		return nil, err
	}

	name := env["AIDB_PROJECT"]
	if name != "" && !projectNameRE.MatchString(name) {
		return nil, fault.BadInput(fmt.Errorf("AIDB_PROJECT=%q: a project name is lowercase letters, digits, '-' and '_', starting with a letter or digit", name))
	}
	raw := rawServices(content)
	if err := checkPortVariables(composeName, raw, env); err != nil {
		return nil, fault.BadInput(err)
	}
	profiles := opts.Profiles
	if len(profiles) == 0 {
		profiles = splitProfiles(env["COMPOSE_PROFILES"])
	}
	cp, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: composeName, Content: content}},
		Environment: env,
	}, func(o *loader.Options) {
		o.Profiles = profiles
		if name != "" {
			o.SetProjectName(name, true)
		} else {
			// Compose's default when the file names no project: the folder.
			o.SetProjectName(loader.NormalizeProjectName(filepath.Base(wd)), false)
		}
	})
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("load compose file %s: %w%s", composeName, err, yamlLine(err)))
	}

	cfgName, cfg, err := readConfig(opts.ConfigFile, wd)
	if err != nil {
		return nil, err
	}
	p := newProject(cp, composeName, cfgName, wd, cfg, env)

	names := make([]string, 0, len(cfg.Databases))
	for n := range cfg.Databases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		enableDatabase(cp, n, cfg.Databases[n])
	}
	for _, n := range names {
		db, err := database(cp, composeName, cfgName, n, cfg.Databases[n], wd, raw)
		if err != nil {
			return nil, fault.BadInput(fmt.Errorf("%s: database %s: %w", cfgName, n, err))
		}
		p.Databases = append(p.Databases, db)
	}
	return p, nil
}

// yamlPos is how the YAML parser (go.yaml.in/yaml/v4) gives where a
// parse error is: the span from the enclosing block's start to the
// error, L<line>.C<column>-L<line>.C<column>.
var yamlPos = regexp.MustCompile(`\bL\d+\.C\d+-L(\d+)\.C(\d+)\b`)

// yamlLine says where a parse error is in people's words (" (line 4,
// column 4)"), or "" when the error says no position.
func yamlLine(err error) string {
	m := yamlPos.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	return fmt.Sprintf(" (line %s, column %s)", m[1], m[2])
}

// splitProfiles reads COMPOSE_PROFILES: names separated by commas.
func splitProfiles(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// enableDatabase keeps a database's service enabled whatever profiles it
// lists: aidb runs its databases always, and only the other services
// follow the profiles.
func enableDatabase(cp *types.Project, name string, dc DatabaseConfig) {
	svc := dc.Service
	if svc == "" {
		svc = name
	}
	if s, ok := cp.DisabledServices[svc]; ok {
		if cp.Services == nil {
			cp.Services = types.Services{}
		}
		cp.Services[svc] = s
		delete(cp.DisabledServices, svc)
	}
}

func workingDir(opts Options) (string, error) {
	wd := opts.WorkingDir
	if wd == "" && opts.ComposeFile != "" {
		wd = filepath.Dir(opts.ComposeFile)
	}
	if wd == "" {
		var err error
		if wd, err = os.Getwd(); err != nil {
			return "", err
		}
	}
	return filepath.Abs(wd)
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// database derives what aidb needs from the compose service.
func database(cp *types.Project, composeName, cfgName, name string, dc DatabaseConfig, wd string, raw map[string]any) (Database, error) {
	svcName := dc.Service
	if svcName == "" {
		svcName = name
	}
	svc, err := cp.GetService(svcName)
	if err != nil {
		return Database{}, fmt.Errorf("service %q is not in the compose file %s (services: %s)%s", svcName, composeName, strings.Join(cp.ServiceNames(), ", "), configAdvice(composeName, cfgName))
	}
	if svc.Image == "" {
		return Database{}, fmt.Errorf("service %q has no image: aidb runs database services from a PostgreSQL image", svcName)
	}
	getenv := func(k string) string {
		if v := svc.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	db := Database{
		Name:     name,
		Service:  svcName,
		Image:    svc.Image,
		User:     getenv("POSTGRES_USER"),
		Password: getenv("POSTGRES_PASSWORD"),
		DBName:   getenv("POSTGRES_DB"),
	}
	if vars := environmentVariables(raw[svcName]); len(vars) > 0 {
		db.EnvVars = vars
	}
	if def, ok := raw[svcName].(map[string]any); ok {
		if img, ok := def["image"]; ok {
			db.ImageVars = variablesIn(img)
		}
	}
	if db.User == "" {
		db.User = "postgres"
	}
	if db.DBName == "" {
		db.DBName = db.User
	}
	if dc.Migrations != "" {
		db.Migrations = dc.Migrations
		if !filepath.IsAbs(db.Migrations) {
			db.Migrations = filepath.Join(wd, db.Migrations)
		}
	}
	for _, port := range svc.Ports {
		if port.Target != PostgresPort || port.Published == "" {
			continue
		}
		p, err := strconv.Atoi(port.Published)
		if err != nil || p <= 0 || p > 65535 {
			return Database{}, fmt.Errorf("service %q publishes port %q: aidb needs one host port number for %d", svcName, port.Published, PostgresPort)
		}
		db.HostIP, db.HostPort = port.HostIP, p
		if db.HostIP == "" {
			db.HostIP = "0.0.0.0"
		}
		break
	}
	if db.HostPort == 0 {
		return Database{}, fmt.Errorf("service %q publishes no host port for %d: aidb reaches its databases there; add ports: [\"127.0.0.1:<port>:%d\"]", svcName, PostgresPort, PostgresPort)
	}
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source != "" {
			db.DataMount = v.Target
			break
		}
	}
	return db, nil
}

// Config is aidb.yaml.
type Config struct {
	BackupDir    string                    `yaml:"backup_dir"`
	ReadyTimeout duration                  `yaml:"ready_timeout"`
	Databases    map[string]DatabaseConfig `yaml:"databases"`
	Retention    RetentionConfig           `yaml:"retention"`
	// Repository is the backup repository's URL (s3://bucket[/prefix]).
	Repository string `yaml:"repository"`
}

// KeepRules are prune's keep rules from aidb.yaml: the newest Last backups,
// and the newest backup of each of the newest Hourly hours, Daily days,
// Weekly ISO weeks, Monthly months and Yearly years (package retention).
type KeepRules struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
}

// Any says whether any rule is set.
func (k KeepRules) Any() bool { return k != KeepRules{} }

// RetentionConfig is aidb.yaml's retention: what prune keeps beyond its
// flags.
type RetentionConfig struct {
	// SafetyKeepWithin is how long safety backups (taken by restore and
	// nuke) stay; 0 keeps none by age. Default 168h (7 days).
	SafetyKeepWithin keepWithin `yaml:"safety_keep_within"`
	// KeepLast ... KeepYearly are prune's keep rules when it is given
	// none on its command line (0: the rule is not used).
	KeepLast    keepCount `yaml:"keep_last"`
	KeepHourly  keepCount `yaml:"keep_hourly"`
	KeepDaily   keepCount `yaml:"keep_daily"`
	KeepWeekly  keepCount `yaml:"keep_weekly"`
	KeepMonthly keepCount `yaml:"keep_monthly"`
	KeepYearly  keepCount `yaml:"keep_yearly"`
	// PITRKeepWindow is how far back serve keeps every time recoverable
	// by point-in-time recovery (aidb pitr prune --keep-window after each
	// run's base backups); 0: serve prunes no base backup or WAL.
	PITRKeepWindow keepWithin `yaml:"pitr_keep_window"`
}

// keepCount is a count of 0 or more.
type keepCount struct{ n int }

func (c *keepCount) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q: a keep count is a whole number, 0 or more (0 leaves the rule out)", n.Line, n.Value)
	}
	c.n = v
	return nil
}

// keepWithin is a duration of 0 or more.
type keepWithin struct{ time.Duration }

func (d *keepWithin) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err == nil && v < 0 {
		err = errors.New("a retention period cannot be negative")
	}
	if err != nil {
		return fmt.Errorf("line %d: %q: %w (write a duration such as 168h, or 0)", n.Line, n.Value, err)
	}
	d.Duration = v
	return nil
}

// DatabaseConfig is one database in aidb.yaml.
type DatabaseConfig struct {
	// Service is the compose service; default: the database's name.
	Service string `yaml:"service"`
	// Migrations is the migration folder, relative to the working
	// directory; default: the embedded set.
	Migrations string `yaml:"migrations"`
}

type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v <= 0 {
		return errors.New("a timeout must be positive, e.g. 60s")
	}
	d.Duration = v
	return nil
}

// ComposeFileNames are the compose files Docker Compose looks for, in
// its order of preference.
var ComposeFileNames = []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"}

// FindComposeFile finds the compose file Docker Compose would use from
// folder dir: the first of ComposeFileNames in dir, else in its parent,
// and so on up; "" when no folder up to the root has one. Two names in
// the folder it stops at are used as Compose uses them: the first, with
// no error.
func FindComposeFile(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		for _, n := range ComposeFileNames {
			p := filepath.Join(dir, n)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", nil
		}
		dir = parent
	}
}

// configAdvice says what to do when aidb.yaml names a database the compose
// file does not serve: the two files do not belong together.
func configAdvice(composeName, cfgName string) string {
	switch {
	case cfgName == DefaultConfigName && composeName != DefaultComposeName:
		return fmt.Sprintf("; no aidb.yaml was found beside %s, so the embedded default's databases were asked for: run aidb init there to write an aidb.yaml for this compose file's PostgreSQL services (or pass --config)", composeName)
	case composeName == DefaultComposeName && cfgName != DefaultConfigName:
		return fmt.Sprintf("; no compose file was found in this folder or above it (%s), so the embedded default's was used: pass -f FILE (or set AIDB_COMPOSE_FILE)", strings.Join(ComposeFileNames, ", "))
	}
	return "; name the database's service in aidb.yaml (databases.<name>.service), or pass another compose file with -f"
}

// ServiceImages reads the compose file at file (interpolated from env and
// the .env beside it, every profile on) and returns each service's image
// by service name: what aidb init looks at to find the PostgreSQL ones.
func ServiceImages(ctx context.Context, file string, env []string) (map[string]string, error) {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("read compose file: %w", err))
	}
	wd, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	m := envMap(env)
	if dotEnv := filepath.Join(wd, ".env"); m["COMPOSE_DISABLE_ENV_FILE"] == "" {
		if fromFile, err := dotenv.GetEnvFromFile(m, []string{dotEnv}); err == nil {
			for k, v := range fromFile {
				if _, set := m[k]; !set {
					m[k] = v
				}
			}
		}
	}
	cp, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: content}},
		Environment: m,
	}, func(o *loader.Options) {
		o.Profiles = []string{"*"}
		o.SetProjectName(loader.NormalizeProjectName(filepath.Base(wd)), false)
	})
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("load compose file %s: %w%s", file, err, yamlLine(err)))
	}
	out := map[string]string{}
	for name, svc := range cp.Services {
		out[name] = svc.Image
	}
	return out, nil
}
