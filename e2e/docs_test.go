package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/movies-microservices/e2e/target"
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

// cpuHeavy is held by each test that loads the machine's CPU by design (a browser, the
// hostile-input barrage) for as long as it does, so that two of them never run side by side.
// Once, on Compose in CI, 213 of the barrage's requests to movies got a plain-text 503 beside a
// browser test: Traefik's answer while a service has no server in rotation, most likely after
// its 1 s health probe of movies' one replica timed out on the starved machine.
var cpuHeavy sync.Mutex

// holdCPU takes cpuHeavy until t ends.
func holdCPU(t *testing.T) {
	t.Helper()
	cpuHeavy.Lock()
	t.Cleanup(cpuHeavy.Unlock)
}

// newBrowser starts a headless Chromium for one test and returns the allocator context that
// chromedp.NewContext takes; the browser stops with the test, and until then the test holds
// cpuHeavy.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	chromium := findChromium(t)
	holdCPU(t)
	// The profile and Chromium's own temporary files (its singleton socket's directory, which a
	// killed browser leaves in /tmp) both go with the test.
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("TMPDIR="+dir),
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

// TestDocsWriteWithToken uses the casts page as a person would: Authorize with the demo client
// (the client credentials flow against the provider's token endpoint, through the gateway), then
// "Try it out" on POST /api/v1/casts with the example body, which must answer 201. Without the
// Authorize step the same Execute answers 401: the page's write does need the token.
func TestDocsWriteWithToken(t *testing.T) {
	t.Parallel()
	secret := demoClientSecret(t)
	allocCtx := newBrowser(t)
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	const op = `#operations-casts-createCast`
	// execute presses Execute on the POST operation (expanded, in "Try it out") and returns the
	// status of the answer the page shows once it changes from before.
	execute := func(before string) (string, error) {
		// A click from the page's own script: a mouse click at the button's place can land on the
		// Authorize dialog while it fades out.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('`+op+` button.execute').click(), true`)); err != nil {
			return "", err
		}
		return chromedp.Run(ctx, chromedp.PollFunction[string](`(before) => {
			const cells = document.querySelectorAll('`+op+` .live-responses-table tbody .response-col_status');
			const s = cells.length ? cells[0].textContent.trim() : '';
			return s !== '' && s !== before ? s : null;
		}`, chromedp.WithPollingArgs(before), chromedp.WithPollingTimeout(20*time.Second)))
	}

	err := chromedp.Do(ctx,
		chromedp.Navigate(suite.gateway+"/api/v1/casts/docs"),
		chromedp.WaitVisible(chromedp.CSS(op+` .opblock-summary`)),
		chromedp.Click(chromedp.CSS(op+` .opblock-summary`)),
		chromedp.Click(chromedp.CSS(op+` button.try-out__btn`)),
		chromedp.WaitVisible(chromedp.CSS(op+` button.execute`)),
	)
	if err != nil {
		t.Fatalf("open POST /api/v1/casts in Try it out: %v", err)
	}
	unauthorized, err := execute("")
	if err != nil {
		t.Fatalf("execute without a token: %v", err)
	}
	if unauthorized != "401" {
		t.Errorf("POST from the page without Authorize answered %s, want 401", unauthorized)
	}

	// The oauth2 scheme's form: client id, secret, every scope, Authorize; once the page has the
	// token, the form shows Logout instead.
	const oauth = `.auth-container:has(#client_id_clientCredentials)`
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`.scheme-container button.authorize`)),
		chromedp.WaitVisible(chromedp.CSS(`#client_id_clientCredentials`)),
		chromedp.SendKeys(chromedp.CSS(`#client_id_clientCredentials`), target.DemoClientID),
		chromedp.SendKeys(chromedp.CSS(`#client_secret_clientCredentials`), secret),
		chromedp.Click(chromedp.CSS(oauth+` a[data-all="true"]`)),
		chromedp.Click(chromedp.CSS(oauth+` button.authorize`)),
	)
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.PollFunction[bool](`() => Array.from(document.querySelectorAll('.modal-ux .auth-container button')).some(b => b.textContent.trim() === 'Logout') || null`,
			chromedp.WithPollingTimeout(20*time.Second)))
	}
	if err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('.auth-container .errors')).map(e => e.textContent).join('; ')`))
		t.Fatalf("Authorize with client %s on the page: %v (errors shown: %q)", target.DemoClientID, err, shown)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.modal-ux .close-modal`))); err != nil {
		t.Fatalf("close the Authorize dialog: %v", err)
	}
	created, err := execute(unauthorized)
	if err != nil {
		t.Fatalf("execute with the token: %v", err)
	}
	if created != "201" {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(op+` .live-responses-table tbody .response-col_description`)))
		t.Errorf("POST from the page after Authorize answered %s, want 201: %.300s", created, body)
	}
}

// demoClientSecret is the demo client's secret of the suite's stack.
func demoClientSecret(t *testing.T) string {
	t.Helper()
	if suite.target != nil {
		return suite.target.Secrets().DemoClient
	}
	if s := os.Getenv("E2E_CLIENT_SECRET"); s != "" {
		return s
	}
	t.Fatal("E2E_CLIENT_SECRET is not set: the docs page's Authorize needs the stack's demo client secret")
	return ""
}
