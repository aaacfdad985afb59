package orchestrator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
)

// containerSpec is the create request for a service's container. image is
// the reference to run, which may differ from the service's (a local build
// standing in for an image that could not be pulled).
func containerSpec(p *compose.Project, svc types.ServiceConfig, name, role, image, hash string) (client.ContainerCreateOptions, error) {
	labels := map[string]string{}
	maps.Copy(labels, svc.Labels)
	maps.Copy(labels, Labels(p.Name, svc.Name, role))
	labels[LabelConfigHash] = hash

	var envs []string
	for _, k := range slices.Sorted(maps.Keys(svc.Environment)) {
		if v := svc.Environment[k]; v != nil {
			envs = append(envs, k+"="+*v)
		}
	}

	exposed, bindings, err := portBindings(svc)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	mounts, err := serviceMounts(p, svc)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}

	restart, err := restartPolicy(svc.Restart)
	if err != nil {
		return client.ContainerCreateOptions{}, fmt.Errorf("service %s: %w", svc.Name, err)
	}
	stopSignal := svc.StopSignal
	if stopSignal == "" && role == RoleDatabase {
		// PostgreSQL's fast shutdown, as the official image's STOPSIGNAL.
		stopSignal = "SIGINT"
	}

	nets := serviceNetworks(p, svc)
	netName := nets[0].name
	return client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:        image,
			Hostname:     svc.Hostname,
			User:         svc.User,
			WorkingDir:   svc.WorkingDir,
			Env:          envs,
			Entrypoint:   []string(svc.Entrypoint),
			Cmd:          []string(svc.Command),
			Labels:       labels,
			ExposedPorts: exposed,
			Healthcheck:  healthcheck(svc.HealthCheck),
			StopSignal:   stopSignal,
		},
		HostConfig: &container.HostConfig{
			PortBindings:  bindings,
			Mounts:        mounts,
			RestartPolicy: restart,
			ShmSize:       int64(svc.ShmSize),
			NetworkMode:   container.NetworkMode(netName),
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netName: {Aliases: nets[0].aliases},
		}},
	}, nil
}

// portBindings are the ports svc's container exposes and their host bindings.
func portBindings(svc types.ServiceConfig) (network.PortSet, network.PortMap, error) {
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, sp := range svc.Ports {
		proto := sp.Protocol
		if proto == "" {
			proto = "tcp"
		}
		port, err := network.ParsePort(fmt.Sprintf("%d/%s", sp.Target, proto))
		if err != nil {
			return nil, nil, fmt.Errorf("service %s: port %d: %w", svc.Name, sp.Target, err)
		}
		exposed[port] = struct{}{}
		b := network.PortBinding{HostPort: sp.Published}
		if sp.HostIP != "" {
			if b.HostIP, err = netip.ParseAddr(sp.HostIP); err != nil {
				return nil, nil, fmt.Errorf("service %s: host address %q: %w", svc.Name, sp.HostIP, err)
			}
		}
		bindings[port] = append(bindings[port], b)
	}
	return exposed, bindings, nil
}

// serviceMounts are the volumes, binds and tmpfs svc's container mounts.
func serviceMounts(p *compose.Project, svc types.ServiceConfig) ([]mount.Mount, error) {
	var mounts []mount.Mount
	for _, v := range svc.Volumes {
		m := mount.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
			m.Type = mount.TypeVolume
			m.Source = volumeName(p, v.Source)
		case types.VolumeTypeBind:
			m.Type, m.Source = mount.TypeBind, v.Source
			if !filepath.IsAbs(m.Source) {
				m.Source = filepath.Join(p.WorkingDir, m.Source)
			}
		case types.VolumeTypeTmpfs:
			m.Type = mount.TypeTmpfs
		default:
			return nil, fmt.Errorf("service %s: volume type %q is not supported", svc.Name, v.Type)
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// volumeName is the engine name of a compose volume: <project>_<key> unless
// the file names it.
func volumeName(p *compose.Project, key string) string {
	if v, ok := p.Compose.Volumes[key]; ok && v.Name != "" {
		return v.Name
	}
	return p.Name + "_" + key
}

// configHash identifies a service's configuration: a container whose label
// differs is recreated (its volumes are kept).
func configHash(p *compose.Project, svc types.ServiceConfig) string {
	b, _ := json.Marshal(struct {
		Project string
		Service types.ServiceConfig
	}{p.Name, svc})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func healthcheck(h *types.HealthCheckConfig) *container.HealthConfig {
	if h == nil {
		return nil
	}
	if h.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	d := func(v *types.Duration) time.Duration {
		if v == nil {
			return 0
		}
		return time.Duration(*v)
	}
	hc := &container.HealthConfig{
		Test:          []string(h.Test),
		Interval:      d(h.Interval),
		Timeout:       d(h.Timeout),
		StartPeriod:   d(h.StartPeriod),
		StartInterval: d(h.StartInterval),
	}
	if h.Retries != nil {
		hc.Retries = int(*h.Retries)
	}
	return hc
}

func restartPolicy(s string) (container.RestartPolicy, error) {
	name, count, _ := strings.Cut(s, ":")
	switch name {
	case "", "no":
		return container.RestartPolicy{Name: container.RestartPolicyDisabled}, nil
	case "always", "unless-stopped":
		return container.RestartPolicy{Name: container.RestartPolicyMode(name)}, nil
	case "on-failure":
		n := 0
		if count != "" {
			var err error
			if n, err = strconv.Atoi(count); err != nil || n < 0 {
				return container.RestartPolicy{}, fmt.Errorf("restart %q: the retry count must be a number", s)
			}
		}
		return container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: n}, nil
	}
	return container.RestartPolicy{}, fmt.Errorf("restart %q: use no, always, unless-stopped or on-failure[:N]", s)
}

// serviceNet is one network a service joins: its engine name and the
// service's aliases there.
type serviceNet struct {
	name    string
	aliases []string
}

// serviceNetworks lists the networks a service joins, the project's
// default network first when it is one of them. The engine takes one
// network at create; the others are connected after.
func serviceNetworks(p *compose.Project, svc types.ServiceConfig) []serviceNet {
	var out []serviceNet
	keys := slices.Sorted(maps.Keys(svc.Networks))
	slices.SortStableFunc(keys, func(a, b string) int {
		switch {
		case a == "default":
			return -1
		case b == "default":
			return 1
		}
		return 0
	})
	for _, k := range keys {
		aliases := []string{svc.Name}
		if c := svc.Networks[k]; c != nil {
			aliases = append(aliases, c.Aliases...)
		}
		out = append(out, serviceNet{name: projectNetworkName(p, k), aliases: aliases})
	}
	if len(out) == 0 {
		out = append(out, serviceNet{name: NetworkName(p), aliases: []string{svc.Name}})
	}
	return out
}

// projectNetworkName is the engine name of a compose network key.
func projectNetworkName(p *compose.Project, key string) string {
	if n, ok := p.Compose.Networks[key]; ok && n.Name != "" {
		return n.Name
	}
	return p.Name + "_" + key
}
