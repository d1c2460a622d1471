"""The blocks and attributes a Nomad job file may use, for scripts/check-nomad.

Taken from the `hcl:"..."` struct tags of Nomad's job API, which is what
`nomad job run` decodes a job file into (jobspec2 decodes HCL straight into
these structs):

  github.com/hashicorp/nomad  api/jobs.go      Job, UpdateStrategy, Multiregion*,
                                               PeriodicConfig, ParameterizedJobConfig,
                                               JobUIConfig
  github.com/hashicorp/nomad  api/tasks.go     TaskGroup, Task, RestartPolicy,
                                               DisconnectStrategy, ReschedulePolicy,
                                               Affinity, Spread, SpreadTarget,
                                               EphemeralDisk, MigrateStrategy,
                                               VolumeRequest, VolumeMount, LogConfig,
                                               TaskLifecycle, DispatchPayloadConfig,
                                               TaskArtifact, Template, ChangeScript,
                                               WaitConfig, Vault, TaskCSIPluginConfig,
                                               WorkloadIdentity, Action
  github.com/hashicorp/nomad  api/services.go  Service, ServiceCheck, CheckRestart,
                                               ServiceWeights (Connect is free-form here)
  github.com/hashicorp/nomad  api/resources.go Resources, NetworkResource, Port,
                                               DNSConfig, CNIConfig, NUMAResource,
                                               RequestedDevice
  github.com/hashicorp/nomad  api/constraint.go Constraint (attribute, operator, value)
  github.com/hashicorp/nomad  api/consul.go    Consul (namespace, cluster, partition)
  github.com/hashicorp/nomad  api/scaling.go   ScalingPolicy (enabled, min, max, type, policy)
  github.com/hashicorp/nomad  jobspec2/types.config.go, types.variables.go
                                               the file level: job, variable(s), locals

`hcl:"name,optional"` / `hcl:"name"` is an attribute, `hcl:"name,block"` a block,
`hcl:",label"` a block label. Fields without an hcl tag are set by the server and
are not allowed in a job file. Free-form blocks (a task's `config`, which the
driver validates, and Consul Connect) are not descended into; `meta`, `env` and
the like are maps of arbitrary string attributes.

Each entry: labels = number of block labels; attrs = allowed attributes;
blocks = {block name: schema key}; mode "map" = arbitrary attributes,
"any" = not checked inside.
"""

MAP = {"mode": "map"}
ANY = {"mode": "any"}


def b(labels=0, attrs=(), blocks=None):
    return {"labels": labels, "attrs": set(attrs), "blocks": dict(blocks or {})}


SCHEMA = {
    # jobspec2: the file level
    "file": b(blocks={"job": "job", "variable": "variable", "variables": "variables", "locals": "locals"}),
    "variable": b(1, ["type", "default", "description", "sensitive", "nullable"], {"validation": "validation"}),
    "validation": b(0, ["condition", "error_message"]),
    "variables": MAP,
    "locals": MAP,
    # api/jobs.go Job
    "job": b(1, ["region", "namespace", "id", "name", "type", "priority", "all_at_once", "datacenters",
                 "node_pool", "consul_token", "vault_token"],
             {"constraint": "constraint", "affinity": "affinity", "group": "group", "update": "update",
              "multiregion": "multiregion", "spread": "spread", "periodic": "periodic",
              "parameterized": "parameterized", "reschedule": "reschedule", "migrate": "migrate",
              "meta": "meta", "ui": "ui"}),
    "update": b(0, ["stagger", "max_parallel", "health_check", "min_healthy_time", "healthy_deadline",
                    "progress_deadline", "canary", "auto_revert", "auto_promote"]),
    "multiregion": b(0, [], {"strategy": "multiregion_strategy", "region": "multiregion_region"}),
    "multiregion_strategy": b(0, ["max_parallel", "on_failure"]),
    "multiregion_region": b(1, ["count", "datacenters", "node_pool"], {"meta": "meta"}),
    "periodic": b(0, ["enabled", "cron", "crons", "prohibit_overlap", "time_zone"]),
    "parameterized": b(0, ["payload", "meta_required", "meta_optional"]),
    "ui": b(0, ["description"], {"link": "ui_link"}),
    "ui_link": b(0, ["label", "url"]),
    "meta": MAP,
    # api/constraint.go, api/tasks.go
    "constraint": b(0, ["attribute", "operator", "value", "version", "regexp", "set_contains",
                        "distinct_hosts", "distinct_property"]),
    "affinity": b(0, ["attribute", "operator", "value", "weight", "version", "regexp",
                      "set_contains_all", "set_contains_any"]),
    "spread": b(0, ["attribute", "weight"], {"target": "spread_target"}),
    "spread_target": b(1, ["percent"]),
    # api/tasks.go TaskGroup
    "group": b(1, ["count", "shutdown_delay", "stop_after_client_disconnect", "max_client_disconnect",
                   "prevent_reschedule_on_lost"],
               {"constraint": "constraint", "affinity": "affinity", "task": "task", "spread": "spread",
                "volume": "volume", "restart": "restart", "disconnect": "disconnect",
                "reschedule": "reschedule", "ephemeral_disk": "ephemeral_disk", "update": "update",
                "migrate": "migrate", "network": "network", "meta": "meta", "service": "service",
                "scaling": "group_scaling", "consul": "consul"}),
    "restart": b(0, ["interval", "attempts", "delay", "mode", "render_templates"]),
    "disconnect": b(0, ["lost_after", "stop_on_client_after", "replace", "reconcile"]),
    "reschedule": b(0, ["attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"]),
    "ephemeral_disk": b(0, ["sticky", "migrate", "size"]),
    "migrate": b(0, ["max_parallel", "health_check", "min_healthy_time", "healthy_deadline"]),
    "volume": b(1, ["type", "source", "read_only", "access_mode", "attachment_mode", "per_alloc"],
                {"mount_options": "mount_options"}),
    "mount_options": b(0, ["fs_type", "mount_flags"]),
    "group_scaling": b(0, ["enabled", "min", "max", "type"], {"policy": "any"}),
    "task_scaling": b(1, ["enabled", "min", "max", "type"], {"policy": "any"}),
    "consul": b(0, ["namespace", "cluster", "partition"]),
    # api/resources.go
    "network": b(0, ["mode", "device", "cidr", "ip", "hostname", "mbits"],
                 {"dns": "dns", "reserved_ports": "port", "port": "port", "cni": "cni"}),
    "port": b(1, ["static", "to", "host_network", "ignore_collision"]),
    "dns": b(0, ["servers", "searches", "options"]),
    "cni": b(0, ["args"]),
    "resources": b(0, ["cpu", "cores", "memory", "memory_max", "disk", "secrets", "iops"],
                   {"network": "network", "device": "device", "numa": "numa"}),
    "device": b(1, ["count"], {"constraint": "constraint", "affinity": "affinity"}),
    "numa": b(0, ["affinity", "devices"]),
    # api/services.go
    "service": b(0, ["name", "tags", "canary_tags", "enable_tag_override", "port", "address_mode", "address",
                     "task", "on_update", "provider", "cluster"],
                 {"check": "check", "check_restart": "check_restart", "connect": "any", "meta": "meta",
                  "canary_meta": "meta", "tagged_addresses": "meta", "identity": "identity",
                  "weights": "weights"}),
    "check": b(0, ["name", "type", "command", "args", "path", "protocol", "port", "expose", "address_mode",
                   "advertise", "interval", "timeout", "initial_status", "notes", "tls_server_name",
                   "tls_skip_verify", "method", "grpc_service", "grpc_use_tls", "task",
                   "success_before_passing", "failures_before_critical", "failures_before_warning", "body",
                   "on_update"],
               {"header": "meta", "check_restart": "check_restart"}),
    "check_restart": b(0, ["limit", "grace", "ignore_warnings"]),
    "weights": b(0, ["passing", "warning"]),
    # api/tasks.go Task
    "task": b(1, ["driver", "user", "kill_timeout", "leader", "shutdown_delay", "kill_signal", "kind"],
              {"lifecycle": "lifecycle", "config": "any", "constraint": "constraint", "affinity": "affinity",
               "env": "meta", "service": "service", "resources": "resources", "restart": "restart",
               "meta": "meta", "logs": "logs", "artifact": "artifact", "vault": "vault", "consul": "consul",
               "template": "template", "dispatch_payload": "dispatch_payload", "volume_mount": "volume_mount",
               "csi_plugin": "csi_plugin", "scaling": "task_scaling", "identity": "identity",
               "action": "action", "schedule": "any"}),
    "lifecycle": b(0, ["hook", "sidecar"]),
    "logs": b(0, ["max_files", "max_file_size", "enabled", "disabled"]),
    "artifact": b(0, ["source", "mode", "insecure", "destination", "chown"], {"options": "meta", "headers": "meta"}),
    "vault": b(0, ["policies", "role", "namespace", "cluster", "env", "disable_file", "change_mode",
                   "change_signal", "allow_token_expiration"]),
    "template": b(0, ["source", "destination", "data", "change_mode", "change_signal", "splay", "perms", "uid",
                      "gid", "left_delimiter", "right_delimiter", "env", "vault_grace", "error_on_missing_key"],
                  {"change_script": "change_script", "wait": "wait"}),
    "change_script": b(0, ["command", "args", "timeout", "fail_on_error"]),
    "wait": b(0, ["min", "max"]),
    "dispatch_payload": b(0, ["file"]),
    "volume_mount": b(0, ["volume", "destination", "read_only", "propagation_mode", "selinux_label"]),
    "csi_plugin": b(0, ["id", "type", "mount_dir", "stage_publish_base_dir", "health_timeout"]),
    "identity": b(0, ["name", "aud", "change_mode", "change_signal", "env", "file", "filepath", "service_name",
                      "ttl"]),
    "action": b(1, ["command", "args"]),
    "any": ANY,
}
