package authz

// tenantRole is a built-in role for one kind of tool that used to get the
// whole Docker socket mounted: a reverse proxy, an updater, a CI runner.
// Each is the set of calls the tool makes, read from its source (the
// paths below are in each tool's repository), and nothing more; the
// README's "Local users and containers" lists them.
type tenantRole struct {
	name, base, desc string
	caps             capability
	allow, deny      []string
	replaces         bool
}

// tenantRoles are built into DefaultPolicy, so that 'dtls gateway socket
// add traefik --role proxy' works without a policy file; a policy file
// may extend them under another name ("base": "proxy").
var tenantRoles = []tenantRole{
	{
		// A reverse proxy that routes by container labels reads them and
		// follows container events; it writes nothing.
		//
		// traefik (pkg/provider/docker/pdocker.go, shared.go, config.go):
		// ServerVersion (GET /version; the client negotiates its API
		// version with GET or HEAD /_ping), ContainerList All (GET
		// /containers/json?all=1), ContainerInspect of each container
		// and of a network-mode container (GET /containers/{id}/json),
		// Events filtered on type=container (GET /events). Swarm mode
		// (pswarm.go: services, tasks, networks) needs the swarm
		// capability: not this role.
		//
		// docker-gen, nginx-proxy's (internal/generator/generator.go):
		// Version, Info, ListContainers All, ListNetworks,
		// InspectContainer, AddEventListener, Ping: GET /version, /info,
		// /containers/json, /networks, /containers/{id}/json, /events,
		// /_ping. Its -notify-sighup and -notify-container signal or
		// restart another container (POST /containers/{id}/kill,
		// /restart): a write, left to a role that names that container.
		//
		// Inspecting a container the proxy did not create lifts the
		// ownership rule of GET /containers/{id}/json: the labels are in
		// the answer, and so is Config.Env, which the gateway cannot
		// strip (docker-socket-proxy's CONTAINERS=1 grants the same).
		name: RoleProxy,
		desc: "a reverse proxy (traefik, docker-gen): reads containers, their labels and events; writes nothing",
		allow: []string{
			"GET /_ping", "GET /version", "GET /info", "GET /events",
			"GET /containers/json", "GET /containers/{id}/json",
			"GET /networks", "GET /networks/{id}",
		},
	},
	{
		// An updater pulls a container's image and, when it changed,
		// replaces the container with one of the same configuration.
		//
		// watchtower (pkg/container/client.go; API 1.25 unless
		// DOCKER_API_VERSION says otherwise, internal/flags/flags.go):
		// ContainerList filtered
		// on status (GET /containers/json), ContainerInspect of each and
		// of a network-mode container (GET /containers/{id}/json),
		// ImageInspectWithRaw (GET /images/{name}/json), ImagePull (POST
		// /images/create?fromImage=), ContainerKill with the stop signal
		// (POST /containers/{id}/kill), then ContainerInspect until it
		// stops, ContainerRemove Force (DELETE /containers/{id}?force=1),
		// ContainerCreate with the old container's Config and HostConfig
		// copied from its inspect (container.go, GetCreateHostConfig:
		// Privileged, Binds, CapAdd included) and one of its networks,
		// NetworkDisconnect and NetworkConnect for the others (POST
		// /networks/{id}/disconnect, connect), ContainerStart;
		// ContainerRename for its own update; ImageRemove Force for
		// --cleanup; ContainerExecCreate for lifecycle hooks.
		//
		// The updater did not create what it replaces, so its allow rules
		// lift the ownership rule; in exchange (replaces) it may stop,
		// kill, remove, rename or start a container only when it could
		// create that container as it is now. A privileged container, a
		// host bind outside the bind roots, another identity's volume or
		// network: the kill is refused before anything is removed, and
		// the create of a copy would be refused by the create checks as
		// ever. The copy is the updater's from then on. Not granted:
		// exec (lifecycle hooks), a forced image removal (--cleanup:
		// images are shared), a rename of its own container when that
		// mounts a host path (its self-update).
		name: RoleUpdater,
		desc: "an updater (watchtower): pulls images, replaces containers it could create as they are; no exec",
		allow: []string{
			"GET /_ping", "GET /version",
			"GET /containers/json", "GET /containers/{id}/json",
			"GET /images/{name}/json", "POST /images/create", "DELETE /images/{name}",
			"POST /containers/{id}/kill", "DELETE /containers/{id}", "POST /containers/create",
			"POST /networks/{id}/disconnect", "POST /networks/{id}/connect",
			"POST /containers/{id}/start", "POST /containers/{id}/rename",
		},
		replaces: true,
	},
	{
		// A CI runner creates, runs and removes its jobs' containers,
		// their volumes and networks, and builds images.
		//
		// gitlab-runner's docker executor (executors/docker/docker.go,
		// services.go, steps.go, terminal.go, internal/exec/exec.go,
		// internal/wait/wait.go, internal/pull/manager.go,
		// internal/volumes/manager.go, internal/networks/manager.go,
		// internal/prebuilt/prebuilt.go): Info and ServerVersion,
		// ImageInspectWithRaw and ImagePullBlocking, VolumeCreate,
		// VolumeInspect and VolumeRemove, NetworkCreate, NetworkInspect,
		// NetworkList, NetworkDisconnect and NetworkRemove,
		// ContainerCreate (its HostConfig from the runner's config:
		// privileged, cap_add, devices, binds as the admin set them),
		// ContainerAttach then ContainerStart, ContainerWait,
		// ContainerInspect, ContainerLogs, ContainerStop, ContainerRemove
		// Force, ContainerExecCreate and ContainerExecAttach in its own
		// containers; the helper image from a tar on disk (ImageLoad,
		// ImageImportBlocking, ImageTag) when it has one. All of it is
		// developer's on the containers it created, and build is the
		// one capability a job's 'docker build' needs. Refused: a
		// privileged job ([runners.docker] privileged = true, docker:dind),
		// the host network, an exec or attach into a container it did
		// not create, an import or load of the helper image from the
		// runner's tar (docker.go, getHelperImage, then falls back to a
		// pull from the registry).
		//
		// Build is the classic builder's POST /build only, whose query
		// (networkmode, the build's own containers) the policy reads.
		// BuildKit's /session and /grpc are one opaque stream the gateway
		// cannot read, and dockerd grants a BuildKit build the host
		// network (the network.host entitlement) unless daemon.json says
		// builder.entitlements.network-host false: a job that reaches
		// the runner's socket would get what this role refuses.
		name: RoleCIRunner, base: RoleDeveloper, caps: capBuild,
		deny: []string{"POST /session", "POST /grpc"},
		desc: "a CI runner (gitlab-runner's docker executor): builds (classic builder), creates, runs and removes its own containers; never privileged",
	},
}
