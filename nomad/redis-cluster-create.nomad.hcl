# Joins the nodes of nomad/redis-cluster.nomad.hcl into one Redis Cluster:
# three primaries, a replica each (redis-cli --cluster create). Run it once the
# six nodes are healthy; it does nothing when they already form a cluster, so
# running it again is harmless.
#
#   nomad var put nomad/jobs/stampede-redis-cluster-create password=<the cluster's password>
#   nomad job run nomad/redis-cluster-create.nomad.hcl

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "redis_cli" {
  description = "redis-cli on the clients (Debian: /usr/bin/redis-cli, package redis-tools)."
  type        = string
  default     = "/usr/bin/redis-cli"
}

job "stampede-redis-cluster-create" {
  datacenters = var.datacenters
  type        = "batch"

  group "create" {
    count = 1

    restart {
      attempts = 3
      interval = "10m"
      delay    = "15s"
      mode     = "fail"
    }

    task "create" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["${NOMAD_TASK_DIR}/create.sh"]
      }

      template {
        destination = "${NOMAD_TASK_DIR}/create.sh"
        perms       = "0700"
        data        = <<-EOT
          set -eu
          {{- with nomadVar "nomad/jobs/stampede-redis-cluster-create" }}
          export REDISCLI_AUTH='{{ .password }}'
          {{- end }}
          NODES="{{ range $i, $s := nomadService "stampede-redis-cluster" }}{{ $s.Address }}:{{ $s.Port }} {{ end }}"
          set -- $NODES
          [ "$#" -eq 6 ] || { echo "want 6 healthy nodes, found $#: $NODES" >&2; exit 1; }
          FIRST=$1
          if ${var.redis_cli} -h "$${FIRST%:*}" -p "$${FIRST##*:}" cluster info | grep -q '^cluster_state:ok'; then
            echo "already a cluster"
            exit 0
          fi
          ${var.redis_cli} --cluster create $NODES --cluster-replicas 1 --cluster-yes
          EOT
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
