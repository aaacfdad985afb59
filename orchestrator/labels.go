// Package orchestrator is the Docker lifecycle of a compose project: images
// (present, pulled, or built locally from Debian's packages), the project's
// networks and named volumes, the databases' containers (up, replacement
// without downtime and its put-back, down, nuke, status) and their
// readiness (SELECT 1, a crash or a refused login failing at once), the
// translation of the databases' compose services into engine create
// requests, and what ai-up hands Docker Compose's engine (the services
// that are not databases, through the small Composer interface that
// package services implements) and when. It makes its engine calls
// through the small Docker interface, which the moby client satisfies.
//
// Running the client tools against the databases (pg_dump, psql, helper
// and throwaway containers) is package pgrun's.
//
// Everything aidb creates carries the labels aidb.project, aidb.service and
// aidb.role defined here, and this package finds and removes things by those
// labels only, never by name pattern.
package orchestrator

import (
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
)

// The labels on every container, volume and network aidb creates.
const (
	LabelProject    = "aidb.project"
	LabelService    = "aidb.service"
	LabelRole       = "aidb.role"
	LabelConfigHash = "aidb.config-hash"
	// LabelOwner names the aidb process that started a helper or throwaway
	// container (owner.Owner's String), so a later run can tell one a run
	// killed before it finished left behind from one a live run uses.
	LabelOwner = "aidb.owner"
)

// Roles: what a labelled resource is for.
const (
	RoleDatabase = "database" // a database's long-lived container
	RoleData     = "data"     // a database's named volume
	RoleNetwork  = "network"  // the project network
	RoleVerify   = "verify"   // a throwaway container restoring a backup
	RoleDump     = "dump"     // a helper container running pg_dump for a backup
	RoleLoad     = "load"     // a helper container running psql for a restore
)

// Labels returns the labels for a resource of the project.
func Labels(project, service, role string) map[string]string {
	return map[string]string{LabelProject: project, LabelService: service, LabelRole: role}
}

// projectFilter selects the project's resources, optionally narrowed to
// service and role (empty: any).
func projectFilter(project, service, role string) client.Filters {
	f := make(client.Filters).Add("label", LabelProject+"="+project)
	if service != "" {
		f.Add("label", LabelService+"="+service)
	}
	if role != "" {
		f.Add("label", LabelRole+"="+role)
	}
	return f
}

// ContainerName is the database's container name: the compose
// container_name if set, else <project>-<service>.
func ContainerName(p *compose.Project, db compose.Database) string {
	if svc, ok := p.Service(db.Service); ok && svc.ContainerName != "" {
		return svc.ContainerName
	}
	return p.Name + "-" + db.Service
}

// NetworkName is the project network: compose's "default" network name,
// <project>_default unless the file names it.
func NetworkName(p *compose.Project) string {
	if n, ok := p.Compose.Networks["default"]; ok && n.Name != "" {
		return n.Name
	}
	return p.Name + "_default"
}
