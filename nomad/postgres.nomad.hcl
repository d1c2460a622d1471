# PostgreSQL for Stampede: the durable record (users, events, orders, payments).
#
#   nomad var put nomad/jobs/stampede-postgres password=<the same db_password as nomad/jobs/stampede>
#   nomad job run nomad/postgres.nomad.hcl
#
# A prestart task runs initdb once (user `stampede`, scram-sha-256, database
# `stampede`); the services run their migrations themselves at start. Registers
# `stampede-postgres`; nomad/stampede.nomad.hcl finds it with nomadService.

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "pg_bin_dir" {
  description = "Directory of initdb/postgres on the clients (Debian 12: /usr/lib/postgresql/15/bin)."
  type        = string
  default     = "/usr/lib/postgresql/15/bin"
}

job "stampede-postgres" {
  datacenters = var.datacenters
  type        = "service"

  group "postgres" {
    count = 1

    network {
      port "pg" {
        static = 5432
      }
    }

    # The cluster lives in the allocation's data directory (sticky, migrated);
    # for real durability use a host or CSI volume.
    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 10240
    }

    service {
      name     = "stampede-postgres"
      provider = "nomad"
      port     = "pg"
      tags     = ["stampede", "postgres"]

      check {
        name     = "postgres tcp"
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
      healthy_deadline = "5m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "initdb" {
      driver = "exec"
      user   = "postgres"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        command = "/bin/sh"
        args    = ["${NOMAD_TASK_DIR}/initdb.sh"]
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/pwfile"
        perms       = "0600"
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/stampede-postgres" }}{{ .password }}{{ end }}
          EOT
      }

      template {
        destination = "${NOMAD_TASK_DIR}/initdb.sh"
        perms       = "0755"
        data        = <<-EOT
          set -eu
          data="$NOMAD_ALLOC_DIR/data/pgdata"
          if [ ! -s "$data/PG_VERSION" ]; then
            ${var.pg_bin_dir}/initdb -D "$data" -U stampede --pwfile="$NOMAD_SECRETS_DIR/pwfile" \
              --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --no-locale
            echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
            ${var.pg_bin_dir}/postgres --single -D "$data" postgres <<'SQL'
          CREATE DATABASE stampede OWNER stampede;
          SQL
          fi
          EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }

    task "postgres" {
      driver = "exec"
      user   = "postgres"

      config {
        command = "${var.pg_bin_dir}/postgres"
        args = [
          "-D", "${NOMAD_ALLOC_DIR}/data/pgdata",
          "-c", "listen_addresses=*",
          "-c", "port=${NOMAD_PORT_pg}",
          "-c", "unix_socket_directories=${NOMAD_TASK_DIR}",
          "-c", "max_connections=300",
          "-c", "shared_buffers=256MB",
        ]
      }

      resources {
        cpu    = 1000
        memory = 1024
      }

      kill_signal  = "SIGINT"
      kill_timeout = "60s"
    }
  }
}
