package compose

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// rawServices is the services section of a compose file as written, before
// interpolation: what a message needs to name the variable a value came
// from. A file that does not parse gives nil; the loader reports it.
func rawServices(content []byte) map[string]any {
	var doc struct {
		Services map[string]any `yaml:"services"`
	}
	if yaml.Unmarshal(content, &doc) != nil {
		return nil
	}
	return doc.Services
}

// variablesIn lists, sorted, the variables a value of the compose file is
// interpolated from (${RULESDB_PORT:-55432} gives RULESDB_PORT).
func variablesIn(value any) []string {
	vars := template.ExtractVariables(map[string]any{"v": value}, template.DefaultPattern)
	return slices.Sorted(maps.Keys(vars))
}

// checkPortVariables refuses a ports entry that names a variable and does
// not parse once interpolated (RULESDB_PORT=abc): the loader's own message,
// "invalid hostPort: abc", says neither which variable nor which entry.
// Entries without variables are left to the loader.
func checkPortVariables(file string, services map[string]any, env map[string]string) error {
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	for _, svc := range slices.Sorted(maps.Keys(services)) {
		def, _ := services[svc].(map[string]any)
		ports, _ := def["ports"].([]any)
		for _, entry := range ports {
			vars := variablesIn(entry)
			if len(vars) == 0 {
				continue
			}
			var err error
			switch e := entry.(type) {
			case string:
				var s string
				if s, err = template.Substitute(e, lookup); err == nil {
					_, err = types.ParsePortConfig(s)
				}
			case map[string]any:
				if p, ok := e["published"].(string); ok {
					var s string
					if s, err = template.Substitute(p, lookup); err == nil {
						err = checkPublished(s)
					}
				}
			}
			if err == nil {
				continue
			}
			set := make([]string, len(vars))
			defaults := true
			for i, k := range vars {
				if v, ok := env[k]; ok {
					set[i] = fmt.Sprintf("%s=%q", k, v)
				} else {
					set[i] = k + " (unset)"
				}
				defaults = defaults && hasDefault(entry, k)
			}
			next := fmt.Sprintf("set %s to a free port number (1-65535)", strings.Join(vars, ", "))
			if defaults {
				next += ", or unset it for the file's default"
			}
			return fmt.Errorf("%s gives no host port: service %s publishes %s in compose file %s: %w; %s",
				strings.Join(set, ", "), svc, quoteEntry(entry), file, err, next)
		}
	}
	return nil
}

// hasDefault says whether the entry gives variable k a default value
// (${K:-55432}).
func hasDefault(entry any, k string) bool {
	v, ok := template.ExtractVariables(map[string]any{"v": entry}, template.DefaultPattern)[k]
	return ok && v.DefaultValue != ""
}

// checkPublished checks a long-syntax published value: a port or a range.
func checkPublished(s string) error {
	for p := range strings.SplitSeq(s, "-") {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("invalid published port %q", s)
		}
	}
	return nil
}

func quoteEntry(entry any) string {
	if s, ok := entry.(string); ok {
		return strconv.Quote(s)
	}
	b, err := yaml.Marshal(entry)
	if err != nil {
		return fmt.Sprint(entry)
	}
	return "{" + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ", ") + "}"
}

// environmentVariables maps each key of a service's environment (map or list
// form) to the variables its value is interpolated from.
func environmentVariables(service any) map[string][]string {
	def, _ := service.(map[string]any)
	out := map[string][]string{}
	switch env := def["environment"].(type) {
	case map[string]any:
		for k, v := range env {
			if vars := variablesIn(v); len(vars) > 0 {
				out[k] = vars
			}
		}
	case []any:
		for _, kv := range env {
			s, _ := kv.(string)
			k, v, _ := strings.Cut(s, "=")
			if vars := variablesIn(v); len(vars) > 0 {
				out[k] = vars
			}
		}
	}
	return out
}
