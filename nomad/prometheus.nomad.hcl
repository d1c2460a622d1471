# Prometheus for Stampede on Nomad: finds every role through Nomad's own
# service discovery (nomad_sd_configs) and scrapes each instance's /metrics.
#
#   nomad job run nomad/prometheus.nomad.hcl
#
# Every port of a process serves that whole process's metrics, so Prometheus
# scrapes one target per process. The local prometheus/prometheus.yml scrapes
# one port of `stampede serve all`; here every role is its own process
# (`stampede serve <role>`), so every instance is one target, with
# job="<role>" (from the service name stampede-<role>) and app="stampede", the
# labels the Grafana dashboards use. Only services tagged `metrics` are scraped.
# scripts/check-nomad runs `promtool check config` on the rendered file.

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "prometheus_bin" {
  type    = string
  default = "/usr/bin/prometheus"
}

variable "nomad_addr" {
  description = "The Nomad HTTP API, as seen from the Prometheus task (the local agent)."
  type        = string
  default     = "http://127.0.0.1:4646"
}

variable "scrape_interval" {
  type    = string
  default = "5s"
}

variable "retention" {
  type    = string
  default = "15d"
}

job "stampede-prometheus" {
  datacenters = var.datacenters
  type        = "service"

  group "prometheus" {
    count = 1

    network {
      port "http" {
        static = 9090
      }
    }

    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 10240
    }

    service {
      name     = "stampede-prometheus"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "prometheus"]

      check {
        name     = "prometheus ready"
        type     = "http"
        path     = "/-/ready"
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
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "prometheus" {
      driver = "exec"

      config {
        command = var.prometheus_bin
        args = [
          "--config.file=${NOMAD_TASK_DIR}/prometheus.yml",
          "--storage.tsdb.path=${NOMAD_ALLOC_DIR}/data/prometheus",
          "--storage.tsdb.retention.time=${var.retention}",
          "--web.listen-address=0.0.0.0:${NOMAD_PORT_http}",
          "--web.enable-lifecycle",
        ]
      }

      template {
        destination   = "${NOMAD_TASK_DIR}/prometheus.yml"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          global:
            scrape_interval: ${var.scrape_interval}
            scrape_timeout: 4s
            evaluation_interval: ${var.scrape_interval}

          scrape_configs:
            - job_name: stampede
              metrics_path: /metrics
              nomad_sd_configs:
                - server: "${var.nomad_addr}"
                  refresh_interval: 15s
              relabel_configs:
                # only the services that serve /metrics (the seven roles)
                - source_labels: [__meta_nomad_tags]
                  regex: "(.*,)?metrics(,.*)?"
                  action: keep
                # job = the role, from the service name stampede-<role>
                - source_labels: [__meta_nomad_service]
                  regex: "stampede-(.+)"
                  target_label: job
                - target_label: app
                  replacement: stampede
                - source_labels: [__meta_nomad_alloc_id]
                  target_label: alloc_id
                - source_labels: [__meta_nomad_node_id]
                  target_label: node_id
          EOT
      }

      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }
}
