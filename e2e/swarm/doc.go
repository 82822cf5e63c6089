// Package swarm runs the system on Docker Swarm for the e2e suite: a swarm of three engines on
// this one machine (each a dockerd in a network namespace of its own, cluster.go), a registry
// on the first node that the images are pushed to and every node pulls from (bin/registry, the
// CNCF Distribution registry), and the stack of stack.yaml deployed with `docker stack deploy`
// (deploy.go). It acts on the deployment through the docker client alone: update, scale and
// roll back services, stop a node's engine, cut a node's link. Stack (target.go) is the
// deployment as a driver of the stack under test (target.Target, with its Nodes and Rollouts).
//
// It needs root (network namespaces, dockerd), iproute2's ip, util-linux's nsenter and
// unshare, Debian's docker.io (dockerd), and an engine on the host to build the images.
package swarm
