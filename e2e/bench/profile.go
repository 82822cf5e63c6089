package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// profiledKinds are the profiles taken of every Go process, by the name
// net/http/pprof serves them under: CPU time, and the allocations made during
// the run (a delta of the allocs profile, asked for with ?seconds=).
var profiledKinds = []string{"profile", "allocs"}

// profileFile names a profile: SCENARIO.PROCESS.cpu.pb.gz or .allocs.pb.gz.
func profileFile(scenario, process, kind string) string {
	if kind == "profile" {
		kind = "cpu"
	}
	return scenario + "." + process + "." + kind + ".pb.gz"
}

// profile runs scenario sc through Traefik once more, unmeasured, while every
// Go process of the stack records its CPU profile and its allocations for
// opts.Duration. The load starts first and outlasts the profiles, so that
// they see only steady load. Profiling costs CPU, which is why it happens
// after the measured runs and not during them.
func (r *runner) profile(ctx context.Context, sc Scenario, baseURL string, sources map[string]string, dir string) ([]string, error) {
	lead := time.Second
	token, err := r.token(ctx, VariantTraefik)
	if err != nil {
		return nil, fmt.Errorf("bench: get an access token for the writes: %w", err)
	}
	load := make(chan error, 1)
	go func() {
		_, err := r.gen.run(ctx, baseURL, sc.Name, r.opts.Duration+2*lead, r.ids, 9999, token)
		load <- err
	}()
	select {
	case err := <-load:
		return nil, fmt.Errorf("bench: load for the profiles of %s stopped early: %v", sc.Name, err)
	case <-time.After(lead):
	}

	names := slices.Sorted(maps.Keys(sources))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		files []string
		errs  []error
	)
	client := &http.Client{Timeout: r.opts.Duration + 30*time.Second}
	seconds := strconv.Itoa(int(r.opts.Duration / time.Second))
	for _, name := range names {
		for _, kind := range profiledKinds {
			path := filepath.Join(dir, profileFile(sc.Name, name, kind))
			url := sources[name] + "/debug/pprof/" + kind + "?seconds=" + seconds
			wg.Go(func() {
				err := fetchProfile(ctx, client, url, path)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("bench: profile of %s: %w", name, err))
					return
				}
				files = append(files, path)
			})
		}
	}
	wg.Wait()
	if err := <-load; err != nil {
		errs = append(errs, fmt.Errorf("bench: load for the profiles of %s: %w", sc.Name, err))
	}
	slices.Sort(files)
	return files, errors.Join(errs...)
}

// fetchProfile saves what GET url answers to path; anything but 200 is an
// error naming the answer.
func fetchProfile(ctx context.Context, client *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}
