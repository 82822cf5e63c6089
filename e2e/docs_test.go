package e2e

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
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

// newBrowser starts a headless Chromium for one test and returns the allocator context that
// chromedp.NewContext takes; the browser stops with the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
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
	t.Cleanup(cancelAlloc)
	return allocCtx
}

// TestDocsRenderInBrowser loads each Swagger UI page through the gateway in headless Chromium and
// checks that Swagger UI rendered the service's operations from its own OpenAPI document.
func TestDocsRenderInBrowser(t *testing.T) {
	t.Parallel()
	allocCtx := newBrowser(t)

	for _, svc := range []struct {
		name, path string
		// wantOperations are the operations the page lists, each once: the document names each
		// path once, without the trailing slash that the services accept as well.
		wantOperations []string
	}{
		{"casts", "/api/v1/casts/docs", []string{
			"GET /api/v1/casts", "POST /api/v1/casts",
			"GET /api/v1/casts/{id}", "PUT /api/v1/casts/{id}", "DELETE /api/v1/casts/{id}", "PATCH /api/v1/casts/{id}",
		}},
		{"movies", "/api/v1/movies/docs/", []string{
			"GET /api/v1/movies", "POST /api/v1/movies",
			"GET /api/v1/movies/{id}", "PUT /api/v1/movies/{id}", "DELETE /api/v1/movies/{id}", "PATCH /api/v1/movies/{id}",
			"POST /internal/v1/movies/events",
		}},
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
			operations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
				`Array.from(document.querySelectorAll('.opblock')).map(op =>
					op.querySelector('.opblock-summary-method').textContent.trim().toUpperCase() + ' ' +
					op.querySelector('.opblock-summary-path').getAttribute('data-path'))`))
			if err != nil {
				t.Fatalf("read the operations of %s: %v", svc.path, err)
			}
			if title == "" {
				t.Error("Swagger UI shows no API title")
			}
			slices.Sort(operations)
			want := slices.Sorted(slices.Values(svc.wantOperations))
			if diff := cmp.Diff(want, operations); diff != "" {
				t.Errorf("Swagger UI lists other operations than each of the document's once (-want +got):\n%s", diff)
			}
		})
	}
}
