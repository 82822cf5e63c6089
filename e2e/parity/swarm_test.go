package parity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// The Swarm stack file and its stand-in override (README, "More than one host").
var (
	stackFile         = filepath.Join(repoRoot, "e2e", "swarm", "stack.yaml")
	stackStandinsFile = filepath.Join(repoRoot, "e2e", "swarm", "standins.yaml")
)

// stackService is what these tests read of a service of the stack file.
type stackService struct {
	Image       string   `yaml:"image"`
	Command     []string `yaml:"command"`
	EndpointKey string   `yaml:"-"`
	Deploy      struct {
		EndpointMode string            `yaml:"endpoint_mode"`
		Replicas     int               `yaml:"replicas"`
		Labels       map[string]string `yaml:"labels"`
		UpdateConfig map[string]any    `yaml:"update_config"`
		Resources    struct {
			Limits map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		Placement struct {
			Constraints []string `yaml:"constraints"`
		} `yaml:"placement"`
	} `yaml:"deploy"`
	Environment map[string]string `yaml:"environment"`
	StopSignal  string            `yaml:"stop_signal"`
}

func loadStack(t *testing.T, path string) map[string]stackService {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]stackService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f.Services
}

// TestStackLabelsEqualComposeLabels: Traefik's swarm provider reads deploy.labels; they are
// compose.yaml's labels exactly, service by service, so the routers are the same eight (which
// TestRoutersSameInComposeLabelsAndFileProvider holds against routers.yml).
func TestStackLabelsEqualComposeLabels(t *testing.T) {
	t.Parallel()
	project := loadProject(t)
	services := loadStack(t, stackFile)
	for name, svc := range project.Services {
		if len(svc.Labels) == 0 {
			continue
		}
		if diff := cmp.Diff(map[string]string(svc.Labels), services[name].Deploy.Labels); diff != "" {
			t.Errorf("%s: compose.yaml labels and %s deploy.labels differ (-compose +stack):\n%s", name, stackFile, diff)
		}
	}
	labels := map[string]map[string]string{}
	for name, svc := range services {
		labels[name] = svc.Deploy.Labels
	}
	fromStack := routersFromLabels(t, labels)
	fromFile := routersFromFile(t, loadFileConfig(t, routersFile, nil))
	if diff := cmp.Diff(fromFile, fromStack); diff != "" {
		t.Errorf("%s deploy.labels and %s describe different routers (-file +stack):\n%s", stackFile, routersFile, diff)
	}
}

// TestStackMatchesCompose: the same images (tags) as compose.yaml, Traefik's flags the same but
// for the provider, each service behind Traefik on dnsrr (no virtual IP), replicated and updated
// start-first with a rollback, every service with limits.
func TestStackMatchesCompose(t *testing.T) {
	t.Parallel()
	project := loadProject(t)
	services := loadStack(t, stackFile)
	for name, svc := range services {
		if svc.Deploy.EndpointMode != "dnsrr" {
			t.Errorf("%s: endpoint_mode %q, want dnsrr", name, svc.Deploy.EndpointMode)
		}
		if svc.Deploy.Resources.Limits["cpus"] == "" || svc.Deploy.Resources.Limits["memory"] == "" {
			t.Errorf("%s: no cpu and memory limits", name)
		}
		c, ok := project.Services[name]
		if !ok {
			t.Errorf("%s: in the stack file, not in compose.yaml", name)
			continue
		}
		if c.Image != "" && c.Image != svc.Image {
			t.Errorf("%s: image %q, compose.yaml's %q", name, svc.Image, c.Image)
		}
	}
	for _, name := range []string{"casts", "movies"} {
		d := services[name].Deploy
		if d.Replicas < 2 || d.UpdateConfig["order"] != "start-first" || d.UpdateConfig["failure_action"] != "rollback" {
			t.Errorf("%s: replicas %d, update_config %v: want at least 2, start-first, failure_action rollback", name, d.Replicas, d.UpdateConfig)
		}
	}
	// Traefik: compose.yaml's flags, with the swarm provider for the docker one.
	var fromCompose, fromStack []string
	for _, arg := range project.Services["traefik"].Command {
		if !strings.HasPrefix(arg, "--providers.docker") {
			fromCompose = append(fromCompose, arg)
		}
	}
	for _, arg := range services["traefik"].Command {
		if !strings.HasPrefix(arg, "--providers.swarm") {
			// compose.yaml's comes interpolated with .env.example; the default is the same.
			fromStack = append(fromStack, strings.ReplaceAll(arg, "${GATEWAY_LOG_LEVEL:-INFO}", "INFO"))
		}
	}
	if diff := cmp.Diff(fromCompose, fromStack); diff != "" {
		t.Errorf("Traefik's flags besides the provider differ (-compose +stack):\n%s", diff)
	}
	// No password or client secret in the stack file: every one is a Swarm secret.
	for name, svc := range services {
		for k, v := range svc.Environment {
			secretish := strings.Contains(k, "PASSWORD") || strings.Contains(k, "SECRET")
			if secretish && !strings.HasSuffix(k, "_FILE") || strings.Contains(v, "${") && (strings.Contains(v, "PASSWORD") || strings.Contains(v, "SECRET")) {
				t.Errorf("%s: %s=%s: passwords come from secrets (*_FILE)", name, k, v)
			}
		}
	}
}

// TestStackStandinsSwapOnlyImages: the override changes images (to the stand-ins, in the
// swarm's registry, with the tags of the stack file) and PostgreSQL's stop signal, nothing else.
func TestStackStandinsSwapOnlyImages(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(stackStandinsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for key := range f {
		if key != "services" && key != "version" {
			t.Errorf("%s sets %q; it may only change services' images", stackStandinsFile, key)
		}
	}
	services := loadStack(t, stackFile)
	for name, raw := range f["services"].(map[string]any) {
		for key := range raw.(map[string]any) {
			if key != "image" && key != "stop_signal" {
				t.Errorf("%s: %s sets %q", stackStandinsFile, name, key)
			}
		}
		image, _ := raw.(map[string]any)["image"].(string)
		_, tag := imageNameTag(services[name].Image)
		tag, _, _ = strings.Cut(tag, "-") // postgres:17-alpine's stand-in is postgres:17, as with Compose
		if !strings.HasPrefix(image, "${REGISTRY}/movies-microservices-standin/") || !strings.HasSuffix(image, ":"+tag) {
			t.Errorf("%s: stand-in image %q, want ${REGISTRY}/movies-microservices-standin/...:%s", name, image, tag)
		}
	}
}
