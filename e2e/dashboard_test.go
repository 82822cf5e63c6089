package e2e

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/movies-microservices/e2e/stackkit"
)

// dashboardPage is what the test reads off one page of Traefik's dashboard.
type dashboardPage struct {
	// Rows maps each resource listed in the page's table, by its name without the provider
	// ("movies" for movies@file or movies@docker), to its status icon ("enabled", "warning",
	// "disabled"); only the names the test asks for are kept.
	Rows map[string]string
	// Servers are the status icons of a service's servers, on a service's own page.
	Servers []string
	// Entrypoints are the cards of the dashboard's home page.
	Entrypoints []string
	// Errors are error texts the dashboard shows (fetch errors, its error boundary).
	Errors []string
}

// readDashboardJS reads a dashboardPage off the current page. Rows are links to a resource's
// own page (#/http/routers/NAME@PROVIDER); its status icon carries the status as data-testid.
const readDashboardJS = `(() => {
	// The tables load more rows as the page scrolls down: every read scrolls to the end.
	window.scrollTo(0, document.body.scrollHeight);
	for (const el of document.querySelectorAll('*')) { if (el.scrollHeight > el.clientHeight + 1 && getComputedStyle(el).overflowY !== 'visible') el.scrollTop = el.scrollHeight; }
	const statusOf = el => { const s = el.querySelector('[data-testid="enabled"],[data-testid="warning"],[data-testid="disabled"]'); return s ? s.getAttribute('data-testid') : ''; };
	const rows = {};
	for (const a of document.querySelectorAll('a[role="row"]')) {
		const m = (a.getAttribute('href') || '').match(/#\/http\/(?:routers|services)\/([^@]+)@/);
		if (m) rows[decodeURIComponent(m[1])] = statusOf(a);
	}
	const servers = Array.from(document.querySelectorAll('[data-testid="servers-list"] [data-testid]'))
		.map(e => e.getAttribute('data-testid')).filter(s => s === 'enabled' || s === 'disabled');
	// The home page: a heading "Entrypoints", then a row of cards, each titled with a name.
	const heading = Array.from(document.querySelectorAll('h2')).find(e => e.textContent.trim() === 'Entrypoints');
	const cards = heading && heading.parentElement.nextElementSibling;
	const entrypoints = cards ? Array.from(cards.children).map(c => { const s = c.querySelector('span'); return s ? s.textContent.trim().toLowerCase() : ''; }) : [];
	const errors = Array.from(document.querySelectorAll('[data-testid="error-text"]')).map(e => e.innerText.trim());
	if (document.body.innerText.includes('Something went wrong')) errors.push('Something went wrong');
	return {Rows: rows, Servers: servers, Entrypoints: entrypoints, Errors: errors};
})()`

// TestDashboardInBrowser opens Traefik's dashboard on the stack under test in headless Chromium
// and finds there the project's routers and services, healthy, and its three entrypoints, with
// no error on any page. The dashboard is built from the pinned Traefik's own web UI sources
// (traefik/build.sh); in CI it must be there.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	// In CI the dashboard is built (traefik/build.sh requires Node.js there), so it cannot be missing.
	if suite.admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("E2E_ADMIN_URL is not set: the dashboard cannot be checked")
		}
		skip(t, "E2E_ADMIN_URL is not set: Traefik's dashboard is not reachable")
	}
	if err := stackkit.CheckDashboard(context.Background(), suite.admin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		skip(t, err.Error())
	}
	allocCtx := newBrowser(t)
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()
	dashboard := suite.admin + "/dashboard/"

	t.Run("entrypoints", func(t *testing.T) {
		waitDashboard(ctx, t, dashboard+"#/", func(p dashboardPage) dashboardPage {
			slices.Sort(p.Entrypoints)
			return dashboardPage{Entrypoints: slices.Compact(p.Entrypoints), Errors: p.Errors}
		}, dashboardPage{Entrypoints: []string{"mesh", "traefik", "web"}})
	})

	t.Run("routers", func(t *testing.T) {
		want := dashboardPage{Rows: map[string]string{}}
		for _, name := range []string{"movies", "casts", "movies-read", "casts-read", "movies-mesh", "casts-mesh", "movies-internal", "hydra", "not-found"} {
			want.Rows[name] = "enabled"
		}
		waitDashboard(ctx, t, dashboard+"#/http/routers", keepRows(want.Rows), want)
	})

	t.Run("services", func(t *testing.T) {
		want := dashboardPage{Rows: map[string]string{"movies": "enabled", "casts": "enabled", "hydra": "enabled"}}
		waitDashboard(ctx, t, dashboard+"#/http/services", keepRows(want.Rows), want)
		// Each service's own page lists its servers with their health-check status: as many
		// as Traefik's API lists (replicas), every one UP.
		var services []traefikService
		getAdmin(t, "/api/http/services", &services)
		for _, svc := range services {
			name, _, _ := strings.Cut(svc.Name, "@")
			if _, ok := want.Rows[name]; !ok {
				continue
			}
			t.Run(name, func(t *testing.T) {
				up := dashboardPage{Servers: slices.Repeat([]string{"enabled"}, len(svc.ServerStatus))}
				waitDashboard(ctx, t, dashboard+"#/http/services/"+svc.Name, func(p dashboardPage) dashboardPage {
					return dashboardPage{Servers: p.Servers, Errors: p.Errors}
				}, up)
			})
		}
	})
}

// keepRows narrows a page to the rows the test asks for, so that other routers or services
// (Traefik's own, another provider's) do not matter.
func keepRows(want map[string]string) func(dashboardPage) dashboardPage {
	return func(p dashboardPage) dashboardPage {
		rows := map[string]string{}
		for name, status := range p.Rows {
			if _, ok := want[name]; ok {
				rows[name] = status
			}
		}
		return dashboardPage{Rows: rows, Errors: p.Errors}
	}
}

// waitDashboard opens url and reads the page until its view (what the test compares) equals
// want, or 30 s pass: the dashboard fetches the API after it renders, and a server's health
// check may still be on its way. It fails with the last difference.
func waitDashboard(ctx context.Context, t *testing.T, url string, view func(dashboardPage) dashboardPage, want dashboardPage) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	var diff string
	err := stackkit.Poll(ctx, 30*time.Second, 250*time.Millisecond, "the dashboard page "+url, func() error {
		page, err := chromedp.Run(ctx, chromedp.Evaluate[dashboardPage](readDashboardJS))
		if err != nil {
			t.Fatalf("read %s: %v", url, err)
		}
		if diff = cmp.Diff(want, view(page), cmpopts.EquateEmpty()); diff != "" {
			return errors.New("differs")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dashboard page %s (-want +got):\n%s", url, diff)
	}
}
