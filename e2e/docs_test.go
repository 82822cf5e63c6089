package e2e

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns a Chromium to drive; it is required in CI and optional elsewhere.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	const how = "no Chromium found: install Debian's chromium package (apt-get install chromium) to check the docs pages in a real browser"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	skip(t, how)
	return ""
}

// TestDocsRenderInBrowser loads each Swagger UI page through the gateway in headless Chromium and
// checks that Swagger UI rendered the service's operations from its own OpenAPI document.
func TestDocsRenderInBrowser(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()

	for _, svc := range []struct {
		name, path string
		wantPaths  []string
	}{
		{"casts", "/api/v1/casts/docs", []string{"/api/v1/casts", "/api/v1/casts/{id}"}},
		{"movies", "/api/v1/movies/docs/", []string{"/api/v1/movies", "/api/v1/movies/{id}"}},
	} {
		t.Run(svc.name, func(t *testing.T) {
			ctx, cancel := chromedp.NewContext(allocCtx)
			defer cancel()
			ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
			defer cancelTimeout()

			err := chromedp.Do(ctx,
				chromedp.Navigate(suite.gateway+svc.path),
				// Operations appear only after Swagger UI fetched and parsed openapi.json.
				chromedp.WaitVisible(`.opblock .opblock-summary-path`),
			)
			if err != nil {
				t.Fatalf("render %s: %v", svc.path, err)
			}
			title, err := chromedp.Run(ctx, chromedp.Text(`.info .title`))
			if err != nil {
				t.Fatalf("read the title of %s: %v", svc.path, err)
			}
			paths, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
				`Array.from(document.querySelectorAll('.opblock .opblock-summary-path')).map(e => e.getAttribute('data-path'))`))
			if err != nil {
				t.Fatalf("read the operations of %s: %v", svc.path, err)
			}
			if title == "" {
				t.Error("Swagger UI shows no API title")
			}
			for _, p := range svc.wantPaths {
				if !slices.Contains(paths, p) {
					t.Errorf("rendered operations %q lack %s", paths, p)
				}
			}
			if len(paths) < 5 {
				t.Errorf("only %d operations rendered: %q", len(paths), paths)
			}
		})
	}
}
