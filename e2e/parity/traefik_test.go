package parity

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// repoRoot is the repository root seen from this package's directory, which is
// the working directory of `go test`.
const repoRoot = "../.."

var (
	dynamicDir      = filepath.Join(repoRoot, "traefik", "dynamic")
	middlewaresFile = filepath.Join(dynamicDir, "middlewares.yml")
	routersFile     = filepath.Join(dynamicDir, "routers.yml")
)

// router is one Traefik HTTP router together with the load balancer of the
// service it targets, reduced to what both configuration sources must agree on.
type router struct {
	EntryPoints      []string
	Rule             string
	Middlewares      []string
	Service          string
	ServerPort       int
	HealthCheck      healthCheck
	ServersTransport string
}

type healthCheck struct {
	Path     string
	Interval time.Duration
	Timeout  time.Duration
}

// loadBalancer is the part of a Traefik service that routers inherit.
type loadBalancer struct {
	ServerPort       int
	HealthCheck      healthCheck
	ServersTransport string
}

// fileConfig is the subset of Traefik's dynamic configuration the repository
// uses. Keys are spelled as in Traefik's documentation.
type fileConfig struct {
	HTTP struct {
		Routers map[string]struct {
			EntryPoints []string `yaml:"entryPoints"`
			Rule        string   `yaml:"rule"`
			Middlewares []string `yaml:"middlewares"`
			Service     string   `yaml:"service"`
		} `yaml:"routers"`
		Middlewares map[string]struct {
			Chain *struct {
				Middlewares []string `yaml:"middlewares"`
			} `yaml:"chain"`
			Errors *struct {
				Service string `yaml:"service"`
			} `yaml:"errors"`
		} `yaml:"middlewares"`
		Services map[string]struct {
			LoadBalancer struct {
				ServersTransport string `yaml:"serversTransport"`
				HealthCheck      struct {
					Path     string `yaml:"path"`
					Interval string `yaml:"interval"`
					Timeout  string `yaml:"timeout"`
				} `yaml:"healthCheck"`
				Servers []struct {
					URL string `yaml:"url"`
				} `yaml:"servers"`
			} `yaml:"loadBalancer"`
		} `yaml:"services"`
		ServersTransports map[string]any `yaml:"serversTransports"`
	} `yaml:"http"`
}

// renderTemplate renders a file-provider file the way Traefik does before
// parsing it (Go template), with env standing in for the process environment.
// Traefik offers all sprig functions; this offers only those the repository's
// files use, with sprig's semantics, so a new function fails here loudly.
func renderTemplate(t *testing.T, path string, env map[string]string) []byte {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	funcs := template.FuncMap{
		"env":       func(name string) string { return env[name] },
		"splitList": func(sep, s string) []string { return strings.Split(s, sep) },
		"trim":      strings.TrimSpace,
		"quote":     strconv.Quote,
		"default": func(def string, given ...string) string {
			if len(given) == 0 || given[0] == "" {
				return def
			}
			return given[0]
		},
	}
	tmpl, err := template.New(filepath.Base(path)).Funcs(funcs).Option("missingkey=error").Parse(string(src))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, nil); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out.Bytes()
}

func loadFileConfig(t *testing.T, path string, env map[string]string) fileConfig {
	t.Helper()
	var cfg fileConfig
	if err := yaml.Unmarshal(renderTemplate(t, path, env), &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// routersFromFile normalizes the routers and services of a file-provider file.
func routersFromFile(t *testing.T, cfg fileConfig) map[string]router {
	t.Helper()
	services := make(map[string]loadBalancer)
	for name, svc := range cfg.HTTP.Services {
		lb := svc.LoadBalancer
		ports := make(map[int]bool)
		for _, s := range lb.Servers {
			ports[urlPort(t, s.URL)] = true
		}
		if len(ports) != 1 {
			t.Errorf("service %s: servers %v: want every server on one port", name, lb.Servers)
		}
		var port int
		for p := range ports {
			port = p
		}
		services[name] = loadBalancer{
			ServerPort: port,
			HealthCheck: healthCheck{
				Path:     lb.HealthCheck.Path,
				Interval: duration(t, "service "+name+" healthCheck.interval", lb.HealthCheck.Interval),
				Timeout:  duration(t, "service "+name+" healthCheck.timeout", lb.HealthCheck.Timeout),
			},
			ServersTransport: lb.ServersTransport,
		}
	}
	routers := make(map[string]router)
	for name, r := range cfg.HTTP.Routers {
		routers[name] = withService(t, name, router{
			EntryPoints: sorted(r.EntryPoints),
			Rule:        r.Rule,
			Middlewares: r.Middlewares,
			Service:     r.Service,
		}, services)
	}
	return routers
}

// routersFromLabels normalizes the traefik.* labels of every container. Label
// keys are case-insensitive in Traefik, so they are compared in lower case. A
// traefik label this function does not understand fails the test, so that no
// setting can drift between the two sources unnoticed.
func routersFromLabels(t *testing.T, labelsByService map[string]map[string]string) map[string]router {
	t.Helper()
	routers := make(map[string]router)
	services := make(map[string]loadBalancer)
	for container, labels := range labelsByService {
		for key, value := range labels {
			k := strings.ToLower(key)
			if !strings.HasPrefix(k, "traefik.") || k == "traefik.enable" {
				continue
			}
			where := fmt.Sprintf("service %s, label %s", container, key)
			if rest, ok := strings.CutPrefix(k, "traefik.http.routers."); ok {
				name, field, _ := strings.Cut(rest, ".")
				r := routers[name]
				switch field {
				case "entrypoints":
					r.EntryPoints = sorted(splitComma(value))
				case "rule":
					r.Rule = value
				case "middlewares":
					r.Middlewares = splitComma(value)
				case "service":
					r.Service = value
				default:
					t.Errorf("%s: router option not compared by this test", where)
				}
				routers[name] = r
				continue
			}
			if rest, ok := strings.CutPrefix(k, "traefik.http.services."); ok {
				name, field, _ := strings.Cut(rest, ".")
				lb := services[name]
				switch field {
				case "loadbalancer.server.port":
					port, err := strconv.Atoi(value)
					if err != nil {
						t.Errorf("%s: %v", where, err)
					}
					lb.ServerPort = port
				case "loadbalancer.healthcheck.path":
					lb.HealthCheck.Path = value
				case "loadbalancer.healthcheck.interval":
					lb.HealthCheck.Interval = duration(t, where, value)
				case "loadbalancer.healthcheck.timeout":
					lb.HealthCheck.Timeout = duration(t, where, value)
				case "loadbalancer.serverstransport":
					lb.ServersTransport = value
				default:
					t.Errorf("%s: service option not compared by this test", where)
				}
				services[name] = lb
				continue
			}
			t.Errorf("%s: only HTTP routers and services belong in labels (middlewares live in %s)", where, middlewaresFile)
		}
	}
	for name, r := range routers {
		routers[name] = withService(t, name, r, services)
	}
	return routers
}

// withService copies the load balancer settings of the router's service into it.
func withService(t *testing.T, name string, r router, services map[string]loadBalancer) router {
	t.Helper()
	lb, ok := services[r.Service]
	if !ok {
		t.Errorf("router %s: service %q is not defined", name, r.Service)
	}
	r.ServerPort = lb.ServerPort
	r.HealthCheck = lb.HealthCheck
	r.ServersTransport = lb.ServersTransport
	return r
}

func urlPort(t *testing.T, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("server url %q: %v", raw, err)
		return 0
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Errorf("server url %q: want an explicit port", raw)
	}
	return port
}

func duration(t *testing.T, where, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf("%s: %v", where, err)
	}
	return d
}

func splitComma(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		out = append(out, strings.TrimSpace(part))
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
