// Package target is the stack under test, as the e2e suite sees it: one interface, Target,
// composed of small interfaces by concern, plus optional ones for what only some stacks have
// (a second stack beside the first, data that outlives the stack, several nodes). Each way of
// running the system is a driver package that implements it and says so at compile time:
// stack (local processes), compose (a Docker Compose project), swarm (Docker Swarm on three
// engines). The suite is written once against Target and never names a driver.
//
// The package also holds the vocabulary every driver and the suite share: the URLs and secrets
// of a stack, the names of its services, its OpenID clients.
package target

import (
	"context"
	"time"
)

// Gateway is where the stack is reached.
type Gateway interface {
	// URLs of the gateway's entrypoints and of each replica directly; a replica's URL may change
	// when it restarts (a container's published port does), so read them after each step.
	URLs() URLs
	// Secrets are the stack's passwords, which no log line or error body may contain.
	Secrets() Secrets
	// Provider names the Traefik provider that defines the stack's routers and services:
	// "file" for processes, "docker" for Compose, "swarm" on Swarm.
	Provider() string
}

// Services acts on the services and their replicas.
type Services interface {
	// StopService stops every replica of a service; StartService starts them again and returns
	// once Traefik routes to each.
	StopService(name string) error
	StartService(ctx context.Context, name string) error
	// KillReplica ends replica i of a service with SIGKILL; StartReplica starts it again and
	// returns once Traefik routes to it; RestartReplica stops it the way an orchestrator does
	// (SIGTERM, the drain, the shutdown) and starts it again.
	KillReplica(name string, i int) error
	StartReplica(ctx context.Context, name string, i int) error
	RestartReplica(ctx context.Context, name string, i int) error
	// WaitReady returns once every part serves again after a fault.
	WaitReady(ctx context.Context) error
}

// Databases acts on the services' databases.
type Databases interface {
	// StopDatabases makes every database refuse connections; StartDatabases ends that.
	// WaitReady tells when the services serve again.
	StopDatabases() error
	StartDatabases(ctx context.Context) error
	// ReachDatabase tries to reach service to's database from where service from runs: nil if
	// it can. What keeps them apart differs by stack (roles on one cluster, networks).
	ReachDatabase(ctx context.Context, from, to string) error
	// DatabaseSessions lists the services' sessions on the databases as role@database.
	DatabaseSessions(ctx context.Context) ([]string, error)
}

// Identity is the stack's OpenID provider (Hydra).
type Identity interface {
	// Token gets an access token of the demo client with the given scope (space-separated)
	// through the gateway's token endpoint.
	Token(ctx context.Context, scope string) (string, error)
	// StopProvider stops the provider and nothing else; StartProvider starts it again and
	// returns once the gateway hands out tokens again.
	StopProvider() error
	StartProvider(ctx context.Context) error
	// RotateSigningKey makes the provider sign access tokens with a new key, and returns its kid.
	RotateSigningKey(ctx context.Context) (kid string, err error)
}

// Traces is the stack's trace backend (Jaeger).
type Traces interface {
	// StopTraceBackend stops the backend and nothing else: Traefik and the services go on
	// exporting to it; StartTraceBackend starts it again, empty, and returns once it is healthy.
	StopTraceBackend() error
	StartTraceBackend(ctx context.Context) error
}

// Logs are what the stack's parts wrote.
type Logs interface {
	// Logs are every part's output so far, by part.
	Logs(ctx context.Context) (map[string]string, error)
	// AccessLog is Traefik's access log (JSON lines, possibly among other lines).
	AccessLog(ctx context.Context) ([]byte, error)
}

// Target is the stack under test.
type Target interface {
	Gateway
	Services
	Databases
	Identity
	Traces
	Logs
	// Kind names the driver, for messages: "processes", "compose", "swarm".
	Kind() string
	// Stop takes down a stack the suite started, its data with it; a stack started by
	// someone else (go run ./e2e/cmd/stack) is left to them.
	Stop() error
}

// Siblings is a stack that can start a second one of its kind beside itself, for a test that
// must not disturb the suite's: its own gateway, services and data.
type Siblings interface {
	// Sibling starts a stack named after this one plus name, running replicas of each service.
	// Its Stop removes it.
	Sibling(ctx context.Context, name string, replicas int) (Target, error)
}

// Persistence is a stack that can start one of its kind whose data outlives it.
type Persistence interface {
	Persistent(ctx context.Context, name string) (Persistent, error)
}

// Persistent is a stack whose data outlives it.
type Persistent interface {
	URLs() URLs
	Token(ctx context.Context, scope string) (string, error)
	// Recreate takes the stack down and brings it up again, with its data unless removeData.
	Recreate(ctx context.Context, removeData bool) error
	Stop() error
}

// Networks is a stack whose parts talk over networks of its own (Compose).
type Networks interface {
	// Name is the stack's name, which its networks' names start with.
	Name() string
	Networks(ctx context.Context) ([]string, error)
}

// Volumes is a stack that keeps its databases in named volumes (Compose).
type Volumes interface {
	Volumes(ctx context.Context) ([]string, error)
}

// Nodes is a stack on several machines (nodes), which a test can take away and bring back.
type Nodes interface {
	// Workers are the nodes that run the services' tasks and may be lost; the first node, which
	// manages the cluster, is not among them.
	Workers() []string
	// StopNode stops a node's container engine as `systemctl stop docker` does (its containers
	// drain and stop); StartNode starts it again.
	StopNode(ctx context.Context, node string) error
	StartNode(ctx context.Context, node string) error
	// CutOff takes a node's network link down; BringBack puts it up again.
	CutOff(ctx context.Context, node string) error
	BringBack(ctx context.Context, node string) error
	// WaitNode waits until the orchestrator reports node in state ("down", "ready").
	WaitNode(ctx context.Context, timeout time.Duration, node, state string) error
	// Tasks are a service's running tasks, with the node each runs on.
	Tasks(ctx context.Context, svc string) ([]Task, error)
	// TaskLogs are the outputs of a service's tasks that still have a container.
	TaskLogs(ctx context.Context, svc string) ([]TaskLog, error)
}

// Rollouts is a stack whose orchestrator scales services and rolls out new images.
type Rollouts interface {
	// Replicas is how many tasks svc runs when the stack is whole.
	Replicas(svc string) int
	// Scale sets svc's tasks to n; WaitRouted waits until Traefik routes to want[svc] servers
	// of each service, all UP.
	Scale(ctx context.Context, svc string, n int) error
	WaitRouted(ctx context.Context, timeout time.Duration, want map[string]int) error
	// NewImage makes an image of svc from the one the stack runs plus Dockerfile instructions,
	// tagged tag, where the nodes pull from; it returns the reference UpdateImage takes.
	NewImage(ctx context.Context, svc, tag string, instructions ...string) (string, error)
	// UpdateImage rolls svc out to image; UpdateState is the orchestrator's state of the last
	// update ("completed", "rollback_completed", ...); SpecImage is the image svc's spec names.
	UpdateImage(ctx context.Context, svc, image string) error
	UpdateState(ctx context.Context, svc string) (string, error)
	SpecImage(ctx context.Context, svc string) (string, error)
	// Image is the full reference the nodes run for an image NewImage returned.
	Image(image string) string
}

// Task is a running task of a service on a stack with Nodes.
type Task struct {
	ID, Node, Image string
	Addr            string // on the gateway's network: Traefik's server is http://Addr:ServicePorts[svc]
}

// TaskLog is the output of one task: standard output and error as its container wrote them.
type TaskLog struct {
	ID, Node string // the task's full id, its node's name
	Text     string
}
