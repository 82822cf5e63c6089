package parity

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestComposeShareNothingWithTheHost: publishing ports is the only way in. A service on the host's
// network would expose every port it listens on (the mesh entrypoint, a database) without any
// `ports:` entry, which TestComposeExposure would not see; privileges and host namespaces would
// undo the hardening that TestComposeHardening checks.
func TestComposeShareNothingWithTheHost(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	for name, svc := range project.Services {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// One exception: hydra-clients joins hydra's own namespace to reach the admin API,
			// which listens on that container's loopback only.
			if svc.NetworkMode != "" && !(name == "hydra-clients" && svc.NetworkMode == "service:hydra") {
				t.Errorf("network_mode = %q, want the service's own networks only", svc.NetworkMode)
			}
			if svc.Pid != "" || svc.Ipc != "" {
				t.Errorf("pid = %q, ipc = %q; want neither shared", svc.Pid, svc.Ipc)
			}
			if svc.Privileged {
				t.Error("privileged is true")
			}
			if len(svc.CapAdd) > 0 {
				t.Errorf("cap_add = %v, want none", svc.CapAdd)
			}
			if len(svc.Devices) > 0 {
				t.Errorf("devices = %v, want none", svc.Devices)
			}
		})
	}
}

// TestComposeDatabasesReachableOnlyByTheirService: each database sits alone with its service on an
// internal network (no route out, nothing else on it), so that not even Traefik or the other
// service can reach it. Hydra's database has Hydra and its one-shot migration.
func TestComposeDatabasesReachableOnlyByTheirService(t *testing.T) {
	t.Parallel()

	project := loadProject(t)
	members := map[string][]string{} // network -> services on it
	for name, svc := range project.Services {
		for network := range svc.Networks {
			members[network] = append(members[network], name)
		}
	}
	for _, tt := range []struct {
		database string
		owners   []string
	}{{"casts-db", []string{"casts"}}, {"movies-db", []string{"movies"}}, {"hydra-db", []string{"hydra", "hydra-migrate"}}} {
		t.Run(tt.database, func(t *testing.T) {
			t.Parallel()
			svc, ok := project.Services[tt.database]
			if !ok {
				t.Fatalf("service %s missing", tt.database)
			}
			if len(svc.Networks) == 0 {
				t.Fatal("on the default network, shared by every service; want its own internal network")
			}
			for network := range svc.Networks {
				if !project.Networks[network].Internal {
					t.Errorf("network %s is not internal: the database could reach (and be reached from) outside", network)
				}
				got := slices.Sorted(slices.Values(members[network]))
				if diff := cmp.Diff(slices.Sorted(slices.Values(append([]string{tt.database}, tt.owners...))), got); diff != "" {
					t.Errorf("services on network %s (-want +got):\n%s", network, diff)
				}
			}
		})
	}
}

// TestDockerfilesRunAsNonRoot: the images themselves run as a non-root user, so that a container
// started without compose's `user:` (docker run, another orchestrator) is not root either.
func TestDockerfilesRunAsNonRoot(t *testing.T) {
	t.Parallel()

	for _, service := range []string{"casts", "movies"} {
		t.Run(service, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(repoRoot, service, "Dockerfile")
			user, err := finalStageUser(path)
			if err != nil {
				t.Fatal(err)
			}
			if isRoot(user) {
				t.Errorf("%s: the final stage runs as %q; want a USER that is not root", path, user)
			}
		})
	}
}

// finalStageUser returns the last USER set after the last FROM of a Dockerfile, "" for none.
func finalStageUser(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	user := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			user = "" // a new stage starts as its base image's user, root for most
		case "USER":
			if len(fields) > 1 {
				user = fields[1]
			}
		}
	}
	return user, sc.Err()
}
