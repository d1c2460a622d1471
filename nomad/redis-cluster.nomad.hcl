# A Redis Cluster for Stampede: six nodes that become three primaries with a
# replica each, for a platform that sells more at once than one Redis core can
# take (README, "Capacity").
#
#   nomad var put nomad/jobs/stampede-redis-cluster password=<the same redis_password as nomad/jobs/stampede>
#   nomad job run nomad/redis-cluster.nomad.hcl
#   nomad var put nomad/jobs/stampede-redis-cluster-create password=<the same>
#   nomad job run nomad/redis-cluster-create.nomad.hcl      # once: joins the nodes into a cluster
#   nomad job run -var redis_cluster=true nomad/stampede.nomad.hcl
#
# Each node: cluster mode, AOF with appendfsync always, keyspace notifications
# `Ex` (the expiry worker subscribes on every primary), the cluster bus on a
# port of its own, and the address and ports Nomad gave it announced to the
# others. Registers every node as `stampede-redis-cluster`; the services take
# them all as their seed list (STAMPEDE_REDIS_URL, comma-separated) and find
# the primaries themselves. A managed cluster instead (ElastiCache, Memorystore,
# ...): skip these two jobs and give the seed list with -var redis_url=...
# to nomad/stampede.nomad.hcl.

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "redis_bin" {
  description = "redis-server on the clients (Debian: /usr/bin/redis-server, package redis-server)."
  type        = string
  default     = "/usr/bin/redis-server"
}

variable "maxmemory_mb" {
  type    = number
  default = 1024
}

job "stampede-redis-cluster" {
  datacenters = var.datacenters
  type        = "service"

  group "node" {
    # Three primaries and a replica for each; redis-cli --cluster create
    # (nomad/redis-cluster-create.nomad.hcl) pairs them on distinct hosts
    # where it can.
    count = 6

    network {
      port "redis" {}
      port "bus" {}
    }

    # The AOF and nodes.conf live in the allocation's data directory: sticky
    # + migrate keep them across updates, so a node rejoins as the member it
    # was. For real durability use a host or CSI volume.
    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 4096
    }

    # Never two nodes of one shard on one host, when the cluster has hosts enough.
    spread {
      attribute = "${node.unique.id}"
    }

    service {
      name     = "stampede-redis-cluster"
      provider = "nomad"
      port     = "redis"
      tags     = ["stampede", "redis", "cluster"]

      check {
        name     = "redis tcp"
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    # One node at a time: the cluster promotes the replica of a primary
    # that goes away, and the node rejoins as a replica.
    update {
      max_parallel     = 1
      auto_revert      = true
      health_check     = "checks"
      min_healthy_time = "30s"
      healthy_deadline = "5m"
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "redis" {
      driver = "exec"

      config {
        command = var.redis_bin
        args    = ["${NOMAD_TASK_DIR}/redis.conf"]
      }

      template {
        destination = "${NOMAD_TASK_DIR}/redis.conf"
        change_mode = "restart"
        perms       = "0600"
        data        = <<-EOT
          bind 0.0.0.0
          port {{ env "NOMAD_PORT_redis" }}
          cluster-enabled yes
          cluster-port {{ env "NOMAD_PORT_bus" }}
          cluster-config-file {{ env "NOMAD_ALLOC_DIR" }}/data/nodes.conf
          cluster-node-timeout 5000
          cluster-announce-ip {{ env "NOMAD_IP_redis" }}
          cluster-announce-port {{ env "NOMAD_PORT_redis" }}
          cluster-announce-bus-port {{ env "NOMAD_PORT_bus" }}
          dir {{ env "NOMAD_ALLOC_DIR" }}/data
          appendonly yes
          appendfsync always
          save ""
          notify-keyspace-events Ex
          maxmemory ${var.maxmemory_mb}mb
          maxmemory-policy noeviction
          {{- with nomadVar "nomad/jobs/stampede-redis-cluster" }}
          requirepass {{ .password }}
          masterauth {{ .password }}
          {{- end }}
          EOT
      }

      resources {
        cpu    = 1000
        memory = var.maxmemory_mb + 256
      }
    }
  }
}
