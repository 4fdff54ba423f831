package config_test

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// composeService is the part of a docker-compose.yml service the cluster
// tier must agree with.
type composeService struct {
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Command     []string          `yaml:"command"`
	Profiles    []string          `yaml:"profiles"`
	Deploy      struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// shellVars reads the NAME=value (or NAME="value") lines at the start of a
// line of a shell script: the declarations scripts/cluster.sh keeps for this
// test.
func shellVars(script string) map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`(?m)^(CLUSTER_[A-Z_]+)=("([^"]*)"|(\S*))$`)
	for _, m := range re.FindAllStringSubmatch(script, -1) {
		out[m[1]] = m[3] + m[4]
	}
	return out
}

// envNames lists the variables a Temporal config template reads with
// `env "NAME"`, with their defaults (empty when there is none).
func envNames(tmpl string) map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`env "([A-Z_]+)"(?: \| default "([^"]*)")?`)
	for _, m := range re.FindAllStringSubmatch(tmpl, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// requiredVersion reads the version a tools/ module requires of module.
func requiredVersion(t *testing.T, gomod, module string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(module) + ` v(\S+)`).FindStringSubmatch(readFile(t, gomod))
	require.NotNil(t, m, "%s requires %s", gomod, module)
	return m[1]
}

func containerPort(t *testing.T, mapping string) string {
	t.Helper()
	parts := strings.Split(mapping, ":")
	return parts[len(parts)-1]
}

// TestComposeMatchesClusterTier checks that docker-compose.yml describes the
// system scripts/cluster.sh runs: the same services (two worker replicas),
// the same Temporal config file and ports, server and UI images at the
// versions built from tools/, the same namespace, search attributes and
// databases, and environment variables the cluster tier's processes also
// get. No Docker engine runs here, so the compose file is checked, not run;
// scripts/cluster.sh --smoke runs the other half.
func TestComposeMatchesClusterTier(t *testing.T) {
	var compose struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "../docker-compose.yml")), &compose))
	script := readFile(t, "../scripts/cluster.sh")
	decl := shellVars(script)
	for _, k := range []string{"CLUSTER_SERVICES", "CLUSTER_WORKER_REPLICAS", "CLUSTER_TEMPORAL_CONFIG", "CLUSTER_TEMPORAL_ENV",
		"CLUSTER_TEMPORAL_DATABASES", "CLUSTER_TEMPORAL_DB_USER", "CLUSTER_NAMESPACE", "CLUSTER_NAMESPACE_RETENTION"} {
		require.NotEmpty(t, decl[k], "scripts/cluster.sh declares %s", k)
	}

	// Services: every long-running or setup service of the compose file
	// (the on-demand tools profile aside) is one cluster.sh runs.
	var services []string
	for name, s := range compose.Services {
		if !slices.Contains(s.Profiles, "tools") {
			services = append(services, name)
		}
	}
	want := strings.Fields(decl["CLUSTER_SERVICES"])
	sort.Strings(services)
	sort.Strings(want)
	assert.Equal(t, want, services, "docker-compose.yml's services are CLUSTER_SERVICES in scripts/cluster.sh")
	replicas, err := strconv.Atoi(decl["CLUSTER_WORKER_REPLICAS"])
	require.NoError(t, err)
	assert.Equal(t, 2, replicas, "the cluster tier runs two worker replicas")
	assert.Equal(t, replicas, compose.Services["worker"].Deploy.Replicas, "worker replicas")

	// Versions: the images are the server and UI built from tools/.
	server := requiredVersion(t, "../tools/temporal-server/go.mod", "go.temporal.io/server")
	ui := requiredVersion(t, "../tools/temporal-ui/go.mod", "github.com/temporalio/ui-server/v2")
	assert.Equal(t, server, requiredVersion(t, "../tools/temporal/go.mod", "go.temporal.io/server"),
		"tools/temporal-server pins the server the pinned CLI embeds")
	assert.Equal(t, ui, requiredVersion(t, "../tools/temporal/go.mod", "github.com/temporalio/ui-server/v2"),
		"tools/temporal-ui pins the UI the pinned CLI embeds")
	assert.Equal(t, "temporalio/server:"+server, compose.Services["temporal"].Image)
	assert.Equal(t, "temporalio/ui:"+ui, compose.Services["temporal-ui"].Image)
	for _, name := range []string{"temporal-schema", "temporal-setup"} {
		assert.True(t, strings.HasPrefix(compose.Services[name].Image, "temporalio/admin-tools:"+server+"-"),
			"%s runs the admin tools of server %s, not %s", name, server, compose.Services[name].Image)
	}
	assert.Equal(t, "postgres:15", compose.Services["temporal-postgresql"].Image)
	assert.Equal(t, "postgres:15", compose.Services["postgres"].Image)

	// The Temporal server: the config file cluster.sh runs it with, mounted.
	cfgDir := decl["CLUSTER_TEMPORAL_CONFIG"]
	cfgFile := "../" + cfgDir + "/" + decl["CLUSTER_TEMPORAL_ENV"] + ".yaml"
	tmpl := readFile(t, cfgFile)
	temporal := compose.Services["temporal"]
	assert.Contains(t, temporal.Volumes, "./"+cfgDir+":/etc/billflow/temporal:ro")
	require.Len(t, temporal.Command, 1)
	assert.Contains(t, temporal.Command[0], "--root /etc/billflow --config temporal --env "+decl["CLUSTER_TEMPORAL_ENV"]+" ")
	assert.Contains(t, script, `--config "$CLUSTER_TEMPORAL_CONFIG" \`+"\n"+`        --env "$CLUSTER_TEMPORAL_ENV"`)
	vars := envNames(tmpl)
	for name := range temporal.Environment {
		assert.Contains(t, vars, name, "compose sets %s for the server: %s reads it", name, cfgFile)
	}
	for _, name := range []string{"TEMPORAL_BIND_IP", "TEMPORAL_BROADCAST_ADDRESS"} {
		assert.Contains(t, vars, name)
		assert.Contains(t, temporal.Command[0], name+"=", "compose sets %s", name)
	}
	// Every address and credential the file reads, cluster.sh sets (free
	// ports, its PostgreSQL); only the log level and database names keep
	// their defaults in both.
	keepDefault := map[string]bool{"TEMPORAL_LOG_LEVEL": true, "TEMPORAL_DB": true, "TEMPORAL_VISIBILITY_DB": true, "TEMPORAL_DB_PASSWORD": true}
	for name := range vars {
		if !keepDefault[name] {
			assert.Regexp(t, `(export|free_port) [^\n]*\b`+name+`\b`, script, "scripts/cluster.sh sets %s (read by %s)", name, cfgFile)
		}
	}
	assert.Equal(t, decl["CLUSTER_TEMPORAL_DB_USER"], temporal.Environment["TEMPORAL_DB_USER"])
	assert.Equal(t, decl["CLUSTER_TEMPORAL_DB_USER"], vars["TEMPORAL_DB_USER"])
	dbs := strings.Fields(decl["CLUSTER_TEMPORAL_DATABASES"])
	require.Len(t, dbs, 2)
	assert.Equal(t, dbs[0], vars["TEMPORAL_DB"])
	assert.Equal(t, dbs[1], vars["TEMPORAL_VISIBILITY_DB"])
	assert.Contains(t, compose.Services["temporal-schema"].Command[0], "for db in "+strings.Join(dbs, " ")+";")

	// Ports: compose publishes the config's default ports.
	require.Len(t, temporal.Ports, 1)
	assert.Equal(t, vars["TEMPORAL_FRONTEND_PORT"], containerPort(t, temporal.Ports[0]), "the frontend's port")
	uiVars := envNames(readFile(t, "../"+cfgDir+"/ui/"+decl["CLUSTER_TEMPORAL_ENV"]+".yaml"))
	require.Len(t, compose.Services["temporal-ui"].Ports, 1)
	assert.Equal(t, uiVars["TEMPORAL_UI_PORT"], containerPort(t, compose.Services["temporal-ui"].Ports[0]), "the Web UI's port")
	for name := range compose.Services["temporal-ui"].Environment {
		assert.Contains(t, uiVars, name, "the cluster tier's UI config reads %s as the UI image does", name)
	}
	api := compose.Services["api"]
	require.Len(t, api.Ports, 1)
	assert.True(t, strings.HasSuffix(api.Environment["BILLFLOW_API_ADDR"], ":"+containerPort(t, api.Ports[0])), "the api listens on its published port")

	// Namespace and search attributes: the ones lib.sh registers.
	setup := compose.Services["temporal-setup"].Command[0]
	assert.Contains(t, setup, "--namespace "+decl["CLUSTER_NAMESPACE"]+" --retention "+decl["CLUSTER_NAMESPACE_RETENTION"])
	lib := readFile(t, "../scripts/lib.sh")
	m := regexp.MustCompile(`(?s)BILLFLOW_SEARCH_ATTRIBUTES=\((.*?)\)`).FindStringSubmatch(lib)
	require.NotNil(t, m)
	libAttrs := strings.Fields(m[1])
	m = regexp.MustCompile(`(?s)for sa in (.*?); do`).FindStringSubmatch(setup)
	require.NotNil(t, m)
	composeAttrs := strings.Fields(strings.ReplaceAll(m[1], `\`, " "))
	assert.Equal(t, libAttrs, composeAttrs, "compose registers lib.sh's BILLFLOW_SEARCH_ATTRIBUTES")

	// billflow's processes: every variable compose gives the worker and the
	// api, the cluster tier's env file (write_env in scripts/stack.sh) exports
	// too, except the rails the local tier leaves off.
	stack := readFile(t, "../scripts/stack.sh")
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`export ([A-Z_]+)=`).FindAllStringSubmatch(stack, -1) {
		exported[m[1]] = true
	}
	for _, svc := range []string{"worker", "api"} {
		for name := range compose.Services[svc].Environment {
			if notInDev[name] {
				continue
			}
			assert.True(t, exported[name], "compose's %s gets %s; the cluster tier's env file exports it too", svc, name)
		}
	}
	assert.Contains(t, script, `stack_worker_up "worker-$i"`, "cluster.sh starts the worker replicas from the env file")
	assert.Contains(t, script, "stack_api_up")
}
