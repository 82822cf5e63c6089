package parity

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/movies-microservices/e2e/compose"
)

var standinsFile = filepath.Join(repoRoot, "e2e", "compose", "standins.yaml")

// standinPrefix names every stand-in image: never an official image's name.
const standinPrefix = "movies-microservices-standin/"

// TestStandinsSwapOnlyImages: the stand-in override changes the images (and, for the imported
// PostgreSQL image, which cannot carry a STOPSIGNAL, the stop signal the official image has),
// nothing else; each stand-in is under the project's own name, with the tag of the image it
// stands for; the build arguments it sets are the Dockerfiles' base-image arguments.
func TestStandinsSwapOnlyImages(t *testing.T) {
	t.Parallel()
	official, standin := loadProject(t), loadProject(t, standinsFile)
	for name, want := range official.Services {
		got := standin.Services[name]
		if got.Build == nil {
			if !strings.HasPrefix(got.Image, standinPrefix) {
				t.Errorf("%s: image %q is not a stand-in (%s...)", name, got.Image, standinPrefix)
			}
			// postgres:17-alpine becomes .../postgres:17, traefik:v3.6.12 .../traefik:v3.6.12.
			wantName, wantTag := imageNameTag(want.Image)
			gotName, gotTag := imageNameTag(got.Image)
			if gotName != wantName || gotTag == "" || !strings.HasPrefix(wantTag, gotTag) {
				t.Errorf("%s: stand-in %q does not stand for %q (same name, the tag or its version part)", name, got.Image, want.Image)
			}
		} else {
			args := dockerfileBaseArgs(t, filepath.Join(want.Build.Context, want.Build.Dockerfile))
			for arg, value := range got.Build.Args {
				if _, ok := args[arg]; !ok {
					t.Errorf("%s: the override sets build argument %s, which is not a base-image ARG of its Dockerfile (%v)", name, arg, args)
				}
				if value == nil || !strings.HasPrefix(*value, standinPrefix) {
					t.Errorf("%s: build argument %s is not a stand-in", name, arg)
				}
			}
			if len(got.Build.Args) != len(args) {
				t.Errorf("%s: the override sets %d of the Dockerfile's %d base-image arguments", name, len(got.Build.Args), len(args))
			}
		}
		ignore := cmpopts.IgnoreFields(types.ServiceConfig{}, "Image", "StopSignal")
		if diff := cmp.Diff(want, got, ignore, cmpopts.IgnoreFields(types.BuildConfig{}, "Args"), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: the stand-in override changes more than images (-compose.yaml +with standins.yaml):\n%s", name, diff)
		}
		if got.StopSignal != want.StopSignal && !(strings.HasPrefix(got.Image, standinPrefix+"postgres:") && got.StopSignal == "SIGINT") {
			t.Errorf("%s: stop signal %q, compose.yaml's is %q", name, got.StopSignal, want.StopSignal)
		}
	}
}

// imageNameTag splits an image reference into its last path element and its tag.
func imageNameTag(image string) (name, tag string) {
	name, tag, _ = strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	return name, tag
}

// dockerfileBaseArgs are the ARGs before a Dockerfile's first FROM, with their defaults.
func dockerfileBaseArgs(t *testing.T, path string) map[string]string {
	t.Helper()
	args, err := compose.DockerfileBaseArgs(path)
	if err != nil {
		t.Fatal(err)
	}
	return args
}

// TestDockerfilesDefaultToOfficialImages: without build arguments the Dockerfiles build from the
// official images, so that `docker compose up --build` on a machine with a registry is unchanged.
func TestDockerfilesDefaultToOfficialImages(t *testing.T) {
	t.Parallel()
	want := map[string]string{"GO_IMAGE": "golang:1.26", "RUNTIME_IMAGE": "gcr.io/distroless/static-debian12:nonroot"}
	for _, service := range []string{"casts", "movies"} {
		got := dockerfileBaseArgs(t, filepath.Join(repoRoot, service, "Dockerfile"))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s/Dockerfile base-image arguments (-want +got):\n%s", service, diff)
		}
	}
}
