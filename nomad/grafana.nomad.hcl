# Grafana for Stampede, provisioned with the repository's datasource and
# dashboards (grafana/).
#
#   nomad var put nomad/jobs/stampede-grafana admin_password=<password>
#   nomad job run nomad/grafana.nomad.hcl        # from the repository root
#
# `nomad job run` reads the provisioning files and dashboards with HCL `file()`
# (relative to this job file) and ships them inside the job. The datasource
# file is ours with its URL replaced by the address of `stampede-prometheus`
# from Nomad's service catalog (nomadService). The dashboards are copied as they
# are: their templates use a delimiter that never occurs in them, so
# consul-template leaves Grafana's own {{legend}} syntax alone.

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "grafana_bin" {
  description = "grafana-server (or `grafana`) on the clients."
  type        = string
  default     = "/usr/sbin/grafana-server"
}

variable "grafana_home" {
  description = "Grafana's homepath (its public/ and conf/defaults.ini)."
  type        = string
  default     = "/usr/share/grafana"
}

variable "grafana_dir" {
  description = "The repository's grafana/ directory, relative to this file."
  type        = string
  default     = "../grafana"
}

job "stampede-grafana" {
  datacenters = var.datacenters
  type        = "service"

  group "grafana" {
    count = 1

    network {
      port "http" {
        static = 3000
      }
    }

    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 1024
    }

    service {
      name     = "stampede-grafana"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "grafana"]

      check {
        name     = "grafana health"
        type     = "http"
        path     = "/api/health"
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

    task "grafana" {
      driver = "exec"

      config {
        command = var.grafana_bin
        args    = ["--homepath", var.grafana_home]
      }

      env {
        GF_SERVER_HTTP_PORT         = "${NOMAD_PORT_http}"
        GF_PATHS_DATA               = "${NOMAD_ALLOC_DIR}/data/grafana"
        GF_PATHS_LOGS               = "${NOMAD_ALLOC_DIR}/logs"
        GF_PATHS_PROVISIONING       = "${NOMAD_TASK_DIR}/provisioning"
        GF_ANALYTICS_REPORTING_ENABLED = "false"
        GF_USERS_ALLOW_SIGN_UP      = "false"
        STAMPEDE_GRAFANA_DASHBOARDS = "${NOMAD_TASK_DIR}/dashboards"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/grafana.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/stampede-grafana" }}
          GF_SECURITY_ADMIN_PASSWORD={{ .admin_password }}
          {{- end }}
          EOT
      }

      template {
        destination = "${NOMAD_TASK_DIR}/provisioning/datasources/prometheus.yaml"
        change_mode = "restart"
        data = replace(file("${var.grafana_dir}/provisioning/datasources/prometheus.yaml"),
          "http://127.0.0.1:9091",
        "http://{{ range $i, $s := nomadService \"stampede-prometheus\" }}{{ if eq $i 0 }}{{ $s.Address }}:{{ $s.Port }}{{ end }}{{ end }}")
      }

      template {
        destination     = "${NOMAD_TASK_DIR}/provisioning/dashboards/stampede.yaml"
        change_mode     = "noop"
        left_delimiter  = "[[%"
        right_delimiter = "%]]"
        data            = file("${var.grafana_dir}/provisioning/dashboards/stampede.yaml")
      }

      template {
        destination     = "${NOMAD_TASK_DIR}/dashboards/overview.json"
        change_mode     = "noop"
        left_delimiter  = "[[%"
        right_delimiter = "%]]"
        data            = file("${var.grafana_dir}/dashboards/overview.json")
      }

      template {
        destination     = "${NOMAD_TASK_DIR}/dashboards/onsale.json"
        change_mode     = "noop"
        left_delimiter  = "[[%"
        right_delimiter = "%]]"
        data            = file("${var.grafana_dir}/dashboards/onsale.json")
      }

      template {
        destination     = "${NOMAD_TASK_DIR}/dashboards/pipeline.json"
        change_mode     = "noop"
        left_delimiter  = "[[%"
        right_delimiter = "%]]"
        data            = file("${var.grafana_dir}/dashboards/pipeline.json")
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }
}
