# Stampede on Nomad: one task group per role of the single `stampede` binary.
#
#   nomad job run nomad/stampede.nomad.hcl                         # from the repository root
#   nomad job run -var reservation_count=6 nomad/stampede.nomad.hcl
#   nomad job run -var version=2024.06.1 -var stampede_bin=/usr/local/lib/stampede/2024.06.1/stampede nomad/stampede.nomad.hcl
#
# Every group runs `stampede serve <role>` on a dynamic port (STAMPEDE_<ROLE>_PORT
# comes from NOMAD_PORT_http), registers `stampede-<role>` in Nomad's own service
# catalog (provider = "nomad") with an HTTP check on /readyz, and rolls out with a
# canary and auto_revert. Secrets come from the Nomad variable nomad/jobs/stampede;
# Redis and Postgres addresses from the services that nomad/redis.nomad.hcl and
# nomad/postgres.nomad.hcl register. See docs/operations.md, "Deploying on Nomad".
#
# Checked by scripts/check-nomad (HCL parse, schema from Nomad's api/ package,
# cross-references) in the `nomad` stage of scripts/test.

variable "datacenters" {
  description = "Datacenters the job may run in."
  type        = list(string)
  default     = ["*"]
}

variable "stampede_bin" {
  description = "Path of the stampede binary on the Nomad clients (install it there, e.g. /usr/local/lib/stampede/<version>/stampede; with the exec driver it must be under a directory of the client's chroot_env, such as /usr)."
  type        = string
  default     = "/usr/local/bin/stampede"
}

variable "driver" {
  description = "Task driver: exec (isolated; the binary must be inside the chroot, as /usr/local/bin is by default) or raw_exec."
  type        = string
  default     = "exec"
}

variable "version" {
  description = "Release label. Changing it (with stampede_bin) rolls every group out through a canary."
  type        = string
  default     = "dev"
}

variable "log_filter" {
  description = "STAMPEDE_LOG: tracing filter."
  type        = string
  default     = "info"
}
variable "auth_count" {
  description = "Instances of the auth group."
  type        = number
  default     = 2
}
variable "catalog_count" {
  description = "Instances of the catalog group."
  type        = number
  default     = 2
}
variable "reservation_count" {
  description = "Instances of the reservation group."
  type        = number
  default     = 3
}
variable "checkout_count" {
  description = "Instances of the checkout group."
  type        = number
  default     = 2
}
variable "persister_count" {
  description = "Instances of the persister group."
  type        = number
  default     = 1
}
variable "expiry_count" {
  description = "Instances of the expiry group."
  type        = number
  default     = 1
}
variable "notifier_count" {
  description = "Instances of the notifier group."
  type        = number
  default     = 1
}
variable "redis_cluster" {
  description = "Use the Redis Cluster of nomad/redis-cluster.nomad.hcl (every node of stampede-redis-cluster as a seed) instead of the single Redis of nomad/redis.nomad.hcl."
  type        = bool
  default     = false
}

variable "smtp_url" {
  description = "The SMTP relay the notifier and the auth role (verify e-mail, password reset) send through: smtp://host:port (plain SMTP on a private network). Empty: e-mail is written into the alloc's data/mail directory instead."
  type        = string
  default     = ""
}

variable "public_url" {
  description = "The web client's public origin (https://tickets.example.com), for the links in account e-mails. Empty: http://localhost:8080."
  type        = string
  default     = ""
}

variable "redis_url" {
  description = "A Redis elsewhere, e.g. a managed Redis Cluster: its URL, or its seed nodes' URLs separated by commas (with the password in each, redis://:PASSWORD@host:port/). Empty: the Redis from Nomad's service catalog."
  type        = string
  default     = ""
}

locals {
  # STAMPEDE_REDIS_URL: one URL is a single Redis, a comma-separated list a
  # Redis Cluster's seed nodes (the services find the primaries themselves).
  redis_single  = <<-EOT
    {{ range $i, $s := nomadService "stampede-redis" }}{{ if eq $i 0 }}redis://:{{ with nomadVar "nomad/jobs/stampede" }}{{ .redis_password }}{{ end }}@{{ $s.Address }}:{{ $s.Port }}/{{ end }}{{ end }}
    EOT
  redis_cluster = <<-EOT
    {{ range $i, $s := nomadService "stampede-redis-cluster" }}{{ if eq $i 0 }}{{ else }},{{ end }}redis://:{{ with nomadVar "nomad/jobs/stampede" }}{{ .redis_password }}{{ end }}@{{ $s.Address }}:{{ $s.Port }}/{{ end }}
    EOT
  redis_env     = var.redis_url != "" ? var.redis_url : trimspace(var.redis_cluster ? local.redis_cluster : local.redis_single)

  # Shared by every group's secrets template: Redis and Postgres from Nomad's
  # service catalog (or redis_url), secrets from the job's Nomad variable.
  # `stampede` picks up the file as environment variables (env = true).
  connection_env = <<-EOT
    {{- with nomadVar "nomad/jobs/stampede" }}
    STAMPEDE_JWT_SECRET={{ .jwt_secret }}
    STAMPEDE_DATABASE_URL=postgres://stampede:{{ .db_password }}@{{ range $i, $s := nomadService "stampede-postgres" }}{{ if eq $i 0 }}{{ $s.Address }}:{{ $s.Port }}{{ end }}{{ end }}/stampede
    {{- end }}
    STAMPEDE_REDIS_URL=${local.redis_env}
    EOT

  # Where e-mail goes, and where its links point (auth and notifier).
  mail_env = <<-EOT
    STAMPEDE_SMTP_URL=${var.smtp_url}
    STAMPEDE_PUBLIC_URL=${var.public_url}
    EOT

  # The first admin account, created by the auth role at start (idempotent).
  admin_env = <<-EOT
    {{- with nomadVar "nomad/jobs/stampede" }}
    STAMPEDE_ADMIN_EMAIL={{ .admin_email }}
    STAMPEDE_ADMIN_PASSWORD={{ .admin_password }}
    {{- end }}
    EOT
}

job "stampede" {
  datacenters = var.datacenters
  type        = "service"

  meta {
    version = var.version
  }

  # ---- auth: sign-up, sign-in, JWT access tokens, rotating refresh tokens
  group "auth" {
    count = var.auth_count

    network {
      port "http" {}
    }

    service {
      name     = "stampede-auth"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "metrics", "role-auth"]

      check {
        name     = "auth ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = false
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Deregister from the catalog (nginx drops the instance) before the task is stopped.
    shutdown_delay = "5s"

    task "auth" {
      driver = var.driver

      config {
        command = var.stampede_bin
        args    = ["serve", "auth"]
      }

      env {
        STAMPEDE_BIND_HOST  = "${NOMAD_IP_http}"
        STAMPEDE_AUTH_PORT  = "${NOMAD_PORT_http}"
        STAMPEDE_LOG        = var.log_filter
        STAMPEDE_LOG_FORMAT = "json"
      }

      template {
        data        = "${local.connection_env}${local.admin_env}${local.mail_env}"
        destination = "${NOMAD_SECRETS_DIR}/stampede.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 300
        memory = 256
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }

  # ---- catalog: events, sections, seats; publishing loads inventory into Redis
  group "catalog" {
    count = var.catalog_count

    network {
      port "http" {}
    }

    service {
      name     = "stampede-catalog"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "metrics", "role-catalog"]

      check {
        name     = "catalog ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = false
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Deregister from the catalog (nginx drops the instance) before the task is stopped.
    shutdown_delay = "5s"

    task "catalog" {
      driver = var.driver

      config {
        command = var.stampede_bin
        args    = ["serve", "catalog"]
      }

      env {
        STAMPEDE_BIND_HOST  = "${NOMAD_IP_http}"
        STAMPEDE_CATALOG_PORT = "${NOMAD_PORT_http}"
        STAMPEDE_LOG        = var.log_filter
        STAMPEDE_LOG_FORMAT = "json"
      }

      template {
        data        = local.connection_env
        destination = "${NOMAD_SECRETS_DIR}/stampede.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 200
        memory = 192
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }

  # ---- reservation: the hot path: holds through hold.lua, no Postgres
  group "reservation" {
    count = var.reservation_count

    network {
      port "http" {}
    }

    service {
      name     = "stampede-reservation"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "metrics", "role-reservation"]

      check {
        name     = "reservation ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = false
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Deregister from the catalog (nginx drops the instance) before the task is stopped.
    shutdown_delay = "5s"

    task "reservation" {
      driver = var.driver

      config {
        command = var.stampede_bin
        args    = ["serve", "reservation"]
      }

      env {
        STAMPEDE_BIND_HOST  = "${NOMAD_IP_http}"
        STAMPEDE_RESERVATION_PORT = "${NOMAD_PORT_http}"
        STAMPEDE_LOG        = var.log_filter
        STAMPEDE_LOG_FORMAT = "json"
      }

      template {
        data        = local.connection_env
        destination = "${NOMAD_SECRETS_DIR}/stampede.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 400
        memory = 192
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }

  # ---- checkout: payments through the gateway, confirm.lua, refunds
  group "checkout" {
    count = var.checkout_count

    network {
      port "http" {}
    }

    service {
      name     = "stampede-checkout"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "metrics", "role-checkout"]

      check {
        name     = "checkout ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = false
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Deregister from the catalog (nginx drops the instance) before the task is stopped.
    shutdown_delay = "5s"

    task "checkout" {
      driver = var.driver

      config {
        command = var.stampede_bin
        args    = ["serve", "checkout"]
      }

      env {
        STAMPEDE_BIND_HOST  = "${NOMAD_IP_http}"
        STAMPEDE_CHECKOUT_PORT = "${NOMAD_PORT_http}"
        STAMPEDE_LOG        = var.log_filter
        STAMPEDE_LOG_FORMAT = "json"
        # On the Redis Cluster (every primary has a replica) a paid order is
        # answered once its shard's replica has it: no 201 lost in a failover.
        STAMPEDE_CONFIRM_REPLICAS = var.redis_cluster ? "1" : "0"
        # Written by the template below from the Nomad variable.
        STAMPEDE_TICKET_SIGNING_KEY_FILE = "${NOMAD_SECRETS_DIR}/ticket-signing-key.pem"
      }

      template {
        data        = local.connection_env
        destination = "${NOMAD_SECRETS_DIR}/stampede.env"
        env         = true
        change_mode = "restart"
      }

      # The Ed25519 key ticket codes are signed with (PKCS#8 PEM, e.g.
      # `openssl genpkey -algorithm ed25519`), from the job's Nomad variable.
      template {
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/stampede" }}{{ .ticket_signing_key }}{{ end }}
          EOT
        destination = "${NOMAD_SECRETS_DIR}/ticket-signing-key.pem"
        perms       = "0400"
        change_mode = "restart"
      }

      resources {
        cpu    = 300
        memory = 192
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }

  # ---- persister: drains the Redis streams into Postgres in batches
  group "persister" {
    count = var.persister_count

    network {
      port "http" {}
    }

    service {
      name     = "stampede-persister"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "metrics", "role-persister"]

      check {
        name     = "persister ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = false
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Deregister from the catalog (nginx drops the instance) before the task is stopped.
    shutdown_delay = "5s"

    task "persister" {
      driver = var.driver

      config {
        command = var.stampede_bin
        args    = ["serve", "persister"]
      }

      env {
        STAMPEDE_BIND_HOST  = "${NOMAD_IP_http}"
        STAMPEDE_PERSISTER_PORT = "${NOMAD_PORT_http}"
        STAMPEDE_LOG        = var.log_filter
        STAMPEDE_LOG_FORMAT = "json"
      }

      template {
        data        = local.connection_env
        destination = "${NOMAD_SECRETS_DIR}/stampede.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 300
        memory = 256
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }

  # ---- expiry: releases lapsed holds (keyspace notifications + sweeper)
  group "expiry" {
    count = var.expiry_count

    network {
      port "http" {}
    }

    service {
      name     = "stampede-expiry"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "metrics", "role-expiry"]

      check {
        name     = "expiry ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = false
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Deregister from the catalog (nginx drops the instance) before the task is stopped.
    shutdown_delay = "5s"

    task "expiry" {
      driver = var.driver

      config {
        command = var.stampede_bin
        args    = ["serve", "expiry"]
      }

      env {
        STAMPEDE_BIND_HOST  = "${NOMAD_IP_http}"
        STAMPEDE_EXPIRY_PORT = "${NOMAD_PORT_http}"
        STAMPEDE_LOG        = var.log_filter
        STAMPEDE_LOG_FORMAT = "json"
      }

      template {
        data        = local.connection_env
        destination = "${NOMAD_SECRETS_DIR}/stampede.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 200
        memory = 128
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }

  # ---- notifier: confirmation e-mails for order.confirmed
  group "notifier" {
    count = var.notifier_count

    network {
      port "http" {}
    }

    service {
      name     = "stampede-notifier"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "metrics", "role-notifier"]

      check {
        name     = "notifier ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = false
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Deregister from the catalog (nginx drops the instance) before the task is stopped.
    shutdown_delay = "5s"

    task "notifier" {
      driver = var.driver

      config {
        command = var.stampede_bin
        args    = ["serve", "notifier"]
      }

      env {
        STAMPEDE_BIND_HOST  = "${NOMAD_IP_http}"
        STAMPEDE_NOTIFIER_PORT = "${NOMAD_PORT_http}"
        STAMPEDE_LOG        = var.log_filter
        STAMPEDE_LOG_FORMAT = "json"
        STAMPEDE_MAIL_DIR   = "${NOMAD_ALLOC_DIR}/data/mail"
      }

      template {
        data        = "${local.connection_env}${local.mail_env}"
        destination = "${NOMAD_SECRETS_DIR}/stampede.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu    = 100
        memory = 128
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }
}
