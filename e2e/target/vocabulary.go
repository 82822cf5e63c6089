package target

import (
	"crypto/rand"
	"time"
)

// URLs tell where the parts of a running stack listen.
type URLs struct {
	Gateway string   // Traefik "web" entrypoint, e.g. http://127.0.0.1:8080
	Admin   string   // Traefik API, ping and metrics, e.g. http://127.0.0.1:8081
	Mesh    string   // Traefik "mesh" entrypoint, e.g. http://127.0.0.1:8082
	Movies  []string // each movies replica, directly
	Casts   []string // each casts replica, directly
	// Issuer is the OpenID provider as clients reach it, behind the gateway:
	// the tokens' iss, and the base of its token endpoint (Issuer+"oauth2/token").
	Issuer string
	// HydraPublic and HydraAdmin are the provider's own two APIs, directly.
	// Nothing routes the admin API: it manages clients and keys.
	HydraPublic string
	HydraAdmin  string
	// Jaeger is the trace backend's query API and UI (/api/traces/{id},
	// /api/services, ...); empty on a stack without tracing.
	Jaeger string
	// DatabaseAdmin is the superuser URL of the process stack's cluster. For a
	// persistent stack it holds the password: print it with url.URL.Redacted.
	DatabaseAdmin string
	// Profiles maps each process ("casts", "casts-2", "movies", "traefik")
	// to the base URL under which it serves /debug/pprof/, where it does.
	Profiles map[string]string
}

// Secrets are the passwords of a stack's databases and the secrets of its OpenID provider
// (Hydra) and of the provider's clients.
type Secrets struct {
	Superuser string // role "postgres"
	Casts     string // role "casts"
	Movies    string // role "movies"
	Hydra     string // role "hydra", the provider's own database
	// HydraSystem encrypts what Hydra keeps in its database (its signing keys
	// among them): losing it makes that data unreadable.
	HydraSystem string
	DemoClient  string // client DemoClientID's secret
	RelayClient string // client RelayClientID's secret (the cast service's outbox relay)
}

// String keeps the passwords out of anything that prints Secrets.
func (Secrets) String() string { return "target.Secrets{<redacted>}" }

// GoString does the same for %#v.
func (s Secrets) GoString() string { return s.String() }

// NewSecrets generates fresh secrets: 26 random characters (130 bits) each, and two of them
// for the provider's system secret, as Hydra wants at least 32.
func NewSecrets() Secrets {
	return Secrets{Superuser: rand.Text(), Casts: rand.Text(), Movies: rand.Text(), Hydra: rand.Text(),
		HydraSystem: rand.Text() + rand.Text(), DemoClient: rand.Text(), RelayClient: rand.Text()}
}

// Names of the stack's services, the same in every driver (process and log names, Compose and
// Swarm services).
const (
	ServiceCasts  = "casts"
	ServiceMovies = "movies"
	ServiceHydra  = "hydra"
	ServiceJaeger = "jaeger"
)

// ServicePorts are where casts and movies listen inside their containers (compose.yaml,
// stack.yaml): Traefik's servers on the container stacks.
var ServicePorts = map[string]string{ServiceCasts: "8001", ServiceMovies: "8000"}

// Clients, scopes and the audience every stack's provider knows.
const (
	// DemoClientID is the client for people: client credentials, both write scopes.
	DemoClientID = "demo"
	DemoScopes   = "casts:write movies:write"
	// RelayClientID is the cast service's outbox relay, which posts events to movies.
	RelayClientID = "casts-relay"
	RelayScopes   = "movies:events"
	// Audience is the one audience of both services' tokens.
	Audience = "movies-microservices"
	// AccessTokenTTL is how long an access token lives (Hydra's TTL_ACCESS_TOKEN): a verified
	// JWT stays valid until it expires, so it is short.
	AccessTokenTTL = 5 * time.Minute
	// AccessTokenKeySet is the key set Hydra signs access tokens with.
	AccessTokenKeySet = "hydra.jwt.access-token"
)
