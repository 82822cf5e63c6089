package compose

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// DockerfileBaseArgs are the ARGs before a Dockerfile's first FROM, by name, with their
// defaults: the base images a build can swap (GO_IMAGE, RUNTIME_IMAGE in casts/ and movies/).
func DockerfileBaseArgs(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	defer f.Close()
	args := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		if strings.EqualFold(fields[0], "FROM") {
			break
		}
		if strings.EqualFold(fields[0], "ARG") {
			name, value, _ := strings.Cut(fields[1], "=")
			args[name] = value
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("compose: %s: %w", path, err)
	}
	return args, nil
}
