# Redis for Stampede: the hot-path store (holds, inventory, streams).
#
#   nomad var put nomad/jobs/stampede-redis password=<the same redis_password as nomad/jobs/stampede>
#   nomad job run nomad/redis.nomad.hcl
#
# AOF on (appendfsync always: no acknowledged paid order is lost) and
# keyspace notifications `Ex` (the expiry worker listens for `expired` events). Registers `stampede-redis` in Nomad's
# service catalog; nomad/stampede.nomad.hcl finds it with nomadService. One
# instance: scale-out is Redis Cluster (every script touches one hash slot), not
# more copies of this group.

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

job "stampede-redis" {
  datacenters = var.datacenters
  type        = "service"

  group "redis" {
    count = 1

    network {
      port "redis" {
        static = 6379
      }
    }

    # The AOF lives in the allocation's data directory. sticky + migrate keep it
    # across updates and moves; for real durability use a host or CSI volume.
    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 4096
    }

    service {
      name     = "stampede-redis"
      provider = "nomad"
      port     = "redis"
      tags     = ["stampede", "redis"]

      check {
        name     = "redis tcp"
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel     = 1
      auto_revert      = true
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "3m"
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
          dir {{ env "NOMAD_ALLOC_DIR" }}/data
          appendonly yes
          appendfsync always
          save ""
          notify-keyspace-events Ex
          maxmemory ${var.maxmemory_mb}mb
          maxmemory-policy noeviction
          {{- with nomadVar "nomad/jobs/stampede-redis" }}
          requirepass {{ .password }}
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
