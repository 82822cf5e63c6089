package parity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lintBin holds the OpenAPI linters, installed by `make test` (npm ci in e2e/, at the versions
// e2e/package-lock.json pins).
var lintBin = filepath.Join("..", "node_modules", ".bin")

// requireLinters fails in CI, and skips elsewhere, when the linters are not installed.
func requireLinters(t *testing.T) {
	t.Helper()
	for _, name := range []string{"spectral", "redocly"} {
		if _, err := os.Stat(filepath.Join(lintBin, name)); err != nil {
			const how = "the OpenAPI linters are not installed: make test installs them (cd e2e && npm ci --ignore-scripts)"
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v", how, err)
			}
			t.Skip(how)
		}
	}
}

// TestOpenAPIDocumentsPassLinters runs the linters that users of OpenAPI documents run on each
// service's document, with the rules of the config files beside it: Spectral's spectral:oas
// ruleset and Redocly CLI's recommended one. Any error or warning fails; a rule the document
// does not follow is turned off in those files, with the reason.
func TestOpenAPIDocumentsPassLinters(t *testing.T) {
	t.Parallel()
	requireLinters(t)
	for _, svc := range []string{"casts", "movies"} {
		dir := filepath.Join("..", "..", svc, "internal", "api")
		for _, lint := range []struct {
			name string
			run  func(t *testing.T, dir string) []string
		}{
			{"spectral", spectralProblems},
			{"redocly", redoclyProblems},
		} {
			t.Run(svc+"/"+lint.name, func(t *testing.T) {
				t.Parallel()
				if diff := cmp.Diff([]string(nil), lint.run(t, dir)); diff != "" {
					t.Errorf("%s finds problems in %s (-want +got):\n%s", lint.name, filepath.Join(dir, "openapi.json"), diff)
				}
			})
		}
	}
}

// runLinter runs one of the linters and returns what it printed on stdout.
func runLinter(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(lintBin, name), args...)
	// No telemetry and no update check: the tests reach nothing beyond the machine.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// Exit status 1 is both linters' way of saying they found errors, which the report lists;
	// anything else means they could not lint at all (bad config, unreadable document).
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1 && stdout.Len() > 0) {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// spectralProblems lints dir/openapi.json with dir/.spectral.yaml and returns every result of
// severity warning or error.
func spectralProblems(t *testing.T, dir string) []string {
	out := runLinter(t, "spectral", "lint", "--quiet", "--format", "json",
		"--ruleset", filepath.Join(dir, ".spectral.yaml"), filepath.Join(dir, "openapi.json"))
	var results []struct {
		Code     string   `json:"code"`
		Message  string   `json:"message"`
		Path     []string `json:"path"`
		Severity int      `json:"severity"` // 0 error, 1 warning, 2 information, 3 hint
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("spectral printed no JSON results: %v\n%s", err, out)
	}
	var problems []string
	for _, r := range results {
		line := fmt.Sprintf("%s at %s: %s", r.Code, strings.Join(r.Path, "."), r.Message)
		if r.Severity > 1 {
			t.Logf("spectral (severity %d): %s", r.Severity, line)
			continue
		}
		problems = append(problems, line)
	}
	return problems
}

// redoclyProblems lints dir/openapi.json with dir/redocly.yaml and returns every error and warning.
func redoclyProblems(t *testing.T, dir string) []string {
	out := runLinter(t, "redocly", "lint", "--format", "json", "--max-problems", "1000",
		"--config", filepath.Join(dir, "redocly.yaml"), filepath.Join(dir, "openapi.json"))
	var report struct {
		Totals *struct {
			Errors   int `json:"errors"`
			Warnings int `json:"warnings"`
		} `json:"totals"`
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string `json:"severity"`
			Message  string `json:"message"`
			Location []struct {
				Pointer string `json:"pointer"`
			} `json:"location"`
		} `json:"problems"`
	}
	if err := json.Unmarshal(out, &report); err != nil || report.Totals == nil {
		t.Fatalf("redocly printed no JSON report (%v):\n%s", err, out)
	}
	var problems []string
	for _, p := range report.Problems {
		at := ""
		if len(p.Location) > 0 {
			at = p.Location[0].Pointer
		}
		problems = append(problems, fmt.Sprintf("%s %s at %s: %s", p.Severity, p.RuleID, at, p.Message))
	}
	if n := report.Totals.Errors + report.Totals.Warnings; n != len(problems) {
		problems = append(problems, fmt.Sprintf("redocly counts %d errors and warnings, %d listed", n, len(problems)))
	}
	return problems
}
