package stackkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// TraefikService is the part of a service in Traefik's API (/api/http/services) that the
// drivers read: its servers, by URL, and each one's health ("UP", "DOWN").
type TraefikService struct {
	Name         string            `json:"name"`
	ServerStatus map[string]string `json:"serverStatus"`
}

// ServerStatus is Traefik's status of each server of service name (as "casts@docker"), read
// from its API at admin.
func ServerStatus(ctx context.Context, client *http.Client, admin, name string) (map[string]string, error) {
	var svc TraefikService
	err := GetJSON(ctx, client, admin+"/api/http/services/"+name, &svc)
	return svc.ServerStatus, err
}

// ServersUp checks that Traefik's service name has want servers, each UP.
func ServersUp(ctx context.Context, client *http.Client, admin, name string, want int) error {
	servers, err := ServerStatus(ctx, client, admin, name)
	if err != nil {
		return err
	}
	up := 0
	for _, status := range servers {
		if status == "UP" {
			up++
		}
	}
	if up != want || len(servers) != want {
		return fmt.Errorf("servers %v", servers)
	}
	return nil
}

// GetJSON fails unless GET url answers 200, and decodes the JSON body into v;
// with v nil it only reads the body.
func GetJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s answered %d", url, resp.StatusCode)
	}
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}

// CheckDashboard tells whether Traefik's API at adminURL serves its dashboard:
// /dashboard/ answers 200 with the web UI's page. bin/traefik carries the web
// UI only when traefik/build.sh found Node.js; without it the error says so.
func CheckDashboard(ctx context.Context, adminURL string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/dashboard/", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET /dashboard/: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("GET /dashboard/: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<div id="root">`) {
		return fmt.Errorf("GET /dashboard/ answered %d without the web UI: Traefik was built without its dashboard (install Node.js 20 or newer, then rm bin/traefik && make traefik)", resp.StatusCode)
	}
	return nil
}
