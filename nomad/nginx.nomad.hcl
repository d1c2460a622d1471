# nginx, the edge of Stampede, rendered from the SAME template as local runs.
#
#   nomad job run nomad/nginx.nomad.hcl          # from the repository root
#
# How the config is made. nginx/nginx.conf.tmpl is the one source of truth:
# scripts/lib.sh renders it for scripts/up and scripts/test. Here `nomad job run`
# reads the same file (HCL `file()`, relative to this job file) and replaces
# each ${PLACEHOLDER} with a consul-template expression (HCL `replace()`, the
# values in local.nginx_placeholders). Nomad's template block then renders that
# on the client: every upstream gets one `server` line per healthy instance of
# `stampede-<role>` from Nomad's service catalog (nomadService), and re-renders
# and reloads nginx (SIGHUP) when instances come and go. The first `server` of
# each upstream is a permanent `down` placeholder, so an upstream with no
# instances is still valid nginx and answers 502 problem+json.
# scripts/check-nomad renders it the same way with sample instances and runs
# `nginx -t` on the result.

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "nginx_template" {
  description = "The nginx template, relative to this file."
  type        = string
  default     = "../nginx/nginx.conf.tmpl"
}

variable "nginx_bin" {
  type    = string
  default = "/usr/sbin/nginx"
}

variable "web_root" {
  description = "The static web client (the repository's web/) on the clients."
  type        = string
  default     = "/usr/local/share/stampede/web"
}

variable "http_port" {
  type    = number
  default = 8080
}

variable "rate_limits" {
  description = "false comments out every per-address rate limit (load tests from one address)."
  type        = bool
  default     = true
}

variable "edge_count" {
  type    = number
  default = 1
}

locals {
  # `server A; server B; ...` on the template's one `server ${X_UPSTREAM};` line, one
  # per instance, after a `down` placeholder (see the header). One line, because
  # the template's header comments name the placeholders too.
  nginx_placeholders = {
    LISTEN               = "0.0.0.0:{{ env \"NOMAD_PORT_http\" }}"
    PREFIX               = "{{ env \"NOMAD_TASK_DIR\" }}/"
    WEB_ROOT             = var.web_root
    AUTH_UPSTREAM        = "127.0.0.1:9 down{{ range nomadService \"stampede-auth\" }}; server {{ .Address }}:{{ .Port }} max_fails=3 fail_timeout=5s{{ end }}"
    CATALOG_UPSTREAM     = "127.0.0.1:9 down{{ range nomadService \"stampede-catalog\" }}; server {{ .Address }}:{{ .Port }} max_fails=3 fail_timeout=5s{{ end }}"
    RESERVATION_UPSTREAM = "127.0.0.1:9 down{{ range nomadService \"stampede-reservation\" }}; server {{ .Address }}:{{ .Port }} max_fails=3 fail_timeout=5s{{ end }}"
    CHECKOUT_UPSTREAM    = "127.0.0.1:9 down{{ range nomadService \"stampede-checkout\" }}; server {{ .Address }}:{{ .Port }} max_fails=3 fail_timeout=5s{{ end }}"
    RATE_LIMITS          = var.rate_limits ? "" : "#"
  }

  nginx_conf = replace(replace(replace(replace(replace(replace(replace(replace(
    file(var.nginx_template),
    "$${LISTEN}", local.nginx_placeholders.LISTEN),
    "$${PREFIX}", local.nginx_placeholders.PREFIX),
    "$${WEB_ROOT}", local.nginx_placeholders.WEB_ROOT),
    "$${AUTH_UPSTREAM}", local.nginx_placeholders.AUTH_UPSTREAM),
    "$${CATALOG_UPSTREAM}", local.nginx_placeholders.CATALOG_UPSTREAM),
    "$${RESERVATION_UPSTREAM}", local.nginx_placeholders.RESERVATION_UPSTREAM),
    "$${CHECKOUT_UPSTREAM}", local.nginx_placeholders.CHECKOUT_UPSTREAM),
    "$${RATE_LIMITS}", local.nginx_placeholders.RATE_LIMITS)
}

job "stampede-edge" {
  datacenters = var.datacenters
  type        = "service"

  group "nginx" {
    count = var.edge_count

    network {
      port "http" {
        static = var.http_port
      }
    }

    service {
      name     = "stampede-edge"
      provider = "nomad"
      port     = "http"
      tags     = ["stampede", "edge"]

      check {
        name     = "nginx healthz"
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    update {
      max_parallel     = 1
      canary           = 1
      auto_promote     = true
      auto_revert      = true
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "2m"
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "nginx" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args = ["-c", join(" ", [
          "mkdir -p $NOMAD_TASK_DIR/logs $NOMAD_TASK_DIR/tmp &&",
          "exec ${var.nginx_bin} -p $NOMAD_TASK_DIR/ -c $NOMAD_TASK_DIR/nginx.conf",
          "-e $NOMAD_TASK_DIR/logs/error.log -g 'daemon off;'",
        ])]
      }

      template {
        data          = local.nginx_conf
        destination   = "${NOMAD_TASK_DIR}/nginx.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
      }

      # `include mime.types` in the template is relative to nginx.conf.
      template {
        destination = "${NOMAD_TASK_DIR}/mime.types"
        change_mode = "noop"
        data        = <<-EOT
          types {
              text/html html htm;
              text/css css;
              text/plain txt;
              application/javascript js mjs;
              application/json json;
              application/manifest+json webmanifest;
              image/svg+xml svg;
              image/png png;
              image/x-icon ico;
              font/woff2 woff2;
          }
          EOT
      }

      resources {
        cpu    = 500
        memory = 128
      }
    }
  }
}
