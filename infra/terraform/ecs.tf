# ECS on Fargate: the api service behind the ALB and the worker fleet consuming the stream, both
# in the private subnets. Container environment comes from locals.tf (names from config.ts).

resource "aws_ecs_cluster" "main" {
  name = local.prefix

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]
}

resource "aws_cloudwatch_log_group" "service" {
  for_each = local.services

  name              = "/ecs/${local.prefix}/${each.key}"
  retention_in_days = var.log_retention_days
}

# --- security groups ------------------------------------------------------------------------------

resource "aws_security_group" "api" {
  name        = "${local.prefix}-api"
  description = "docorch api tasks"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.prefix}-api" }
}

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.api.id
  description                  = "HTTP from the ALB"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
}

# Workers take no inbound traffic: /healthz is checked inside the container by ECS.
resource "aws_security_group" "worker" {
  name        = "${local.prefix}-worker"
  description = "docorch worker tasks (no inbound)"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.prefix}-worker" }
}

# Both services only call HTTPS APIs: AWS (through the endpoints or NAT), ECR, and Gemini.
resource "aws_vpc_security_group_egress_rule" "https_out" {
  for_each = {
    api    = aws_security_group.api.id
    worker = aws_security_group.worker.id
  }

  security_group_id = each.value
  description       = "HTTPS to AWS APIs, ECR and the Gemini API"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# --- task definitions ------------------------------------------------------------------------------

locals {
  gemini_secret = var.gemini_api_key_secret_arn == null ? [] : [
    { name = "GEMINI_API_KEY", valueFrom = var.gemini_api_key_secret_arn },
  ]

  # Probe used by ECS inside the container; node is the only tool the slim image is sure to have.
  health_probe = "fetch('http://127.0.0.1:'+process.env.%s+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

  # Read-only root filesystem; the one writable place is the images' declared volume
  # /tmp/docorch (uploads stream there), a task volume that Fargate fills from the image, owner
  # `node` included.
  container_common = {
    essential              = true
    linuxParameters        = { initProcessEnabled = true } # reaps children, forwards SIGTERM
    ulimits                = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
    secrets                = local.gemini_secret
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp/docorch", readOnly = false }]
    dependsOn              = [{ containerName = "metrics", condition = "START" }]
  }

  # Metrics reach CloudWatch through a collector sidecar in each task (the AWS Distro for
  # OpenTelemetry collector): it scrapes the service's /metrics every 30 s and writes them as
  # Embedded Metric Format to a log group, which CloudWatch turns into metrics in
  # var.metrics_namespace. Chosen over EMF written by the services because /metrics (Prometheus)
  # stays the one instrumentation, locally and on AWS, with no second metrics path in the code;
  # the Lambda, which nothing can scrape, writes EMF itself (telemetry/emf.ts).
  metrics_dimensions = [["service"], ["service", "status"], ["service", "outcome"], ["service", "operation", "outcome"], ["service", "code"], ["service", "source", "code"], ["service", "mode"], ["service", "stream"]]
  collector_config = { for svc, port in { api = local.api_port, worker = local.worker_port } : svc => yamlencode({
    receivers = {
      prometheus = { config = { scrape_configs = [{
        job_name        = "docorch-${svc}"
        scrape_interval = "30s"
        static_configs  = [{ targets = ["127.0.0.1:${port}"] }]
      }] } }
    }
    processors = { batch = { timeout = "30s" } }
    exporters = {
      awsemf = {
        namespace                        = var.metrics_namespace
        log_group_name                   = aws_cloudwatch_log_group.metrics.name
        dimension_rollup_option          = "NoDimensionRollup"
        resource_to_telemetry_conversion = { enabled = false }
        metric_declarations              = [{ dimensions = local.metrics_dimensions, metric_name_selectors = ["^docorch_"] }]
      }
    }
    service = { pipelines = { metrics = { receivers = ["prometheus"], processors = ["batch"], exporters = ["awsemf"] } } }
  }) }

  metrics_sidecar = { for svc in ["api", "worker"] : svc => {
    name                   = "metrics"
    image                  = var.metrics_collector_image
    essential              = false # a collector failure never stops the service
    readonlyRootFilesystem = true
    environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.collector_config[svc] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service[svc].name
        awslogs-region        = var.region
        awslogs-stream-prefix = "metrics"
      }
    }
  } }
}

# The collectors' EMF lines; CloudWatch extracts the metrics, the lines themselves expire soon.
resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/ecs/${local.prefix}/metrics"
  retention_in_days = 7
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${local.prefix}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.api_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([local.metrics_sidecar["api"], merge(local.container_common, {
    name         = "api"
    image        = "${aws_ecr_repository.service["api"].repository_url}:${var.image_tag}"
    portMappings = [{ name = "http", containerPort = local.api_port, protocol = "tcp" }]
    environment  = [for k in sort(keys(local.api_env)) : { name = k, value = local.api_env[k] }]
    # The API finishes in-flight requests on SIGTERM, up to the sync budget (25 s).
    stopTimeout = 35
    healthCheck = {
      command     = ["CMD", "node", "-e", format(local.health_probe, "PORT")]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service["api"].name
        awslogs-region        = var.region
        awslogs-stream-prefix = "api"
      }
    }
  })])
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${local.prefix}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.worker_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([local.metrics_sidecar["worker"], merge(local.container_common, {
    name         = "worker"
    image        = "${aws_ecr_repository.service["worker"].repository_url}:${var.image_tag}"
    portMappings = [{ name = "admin", containerPort = local.worker_port, protocol = "tcp" }]
    environment  = [for k in sort(keys(local.worker_env)) : { name = k, value = local.worker_env[k] }]
    # Fargate's maximum: time to finish or hand back in-flight records (WORKER_GRACE_MS, 30 s),
    # checkpoint and release leases, with room for a slow model call to be aborted and handed back.
    stopTimeout = 120
    healthCheck = {
      command     = ["CMD", "node", "-e", format(local.health_probe, "WORKER_PORT")]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service["worker"].name
        awslogs-region        = var.region
        awslogs-stream-prefix = "worker"
      }
    }
  })])
}

# --- services -------------------------------------------------------------------------------------------

resource "aws_ecs_service" "api" {
  name                              = "api"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.api.arn
  desired_count                     = var.api_min_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = 60
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.api.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = local.api_port
  }

  lifecycle {
    ignore_changes = [desired_count] # owned by autoscaling.tf after creation
  }

  # The target group must be attached to the ALB before a service can register into it.
  depends_on = [aws_lb_listener.http, aws_lb_listener.https]
}

resource "aws_ecs_service" "worker" {
  name                    = "worker"
  cluster                 = aws_ecs_cluster.main.id
  task_definition         = aws_ecs_task_definition.worker.arn
  desired_count           = var.worker_min_count
  platform_version        = "LATEST"
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  # A replaced worker hands its leases over on SIGTERM; start the new one first.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # The first worker always on regular Fargate; the rest on Spot when worker_use_fargate_spot.
  capacity_provider_strategy {
    capacity_provider = "FARGATE"
    base              = 1
    weight            = var.worker_use_fargate_spot ? 0 : 1
  }

  dynamic "capacity_provider_strategy" {
    for_each = var.worker_use_fargate_spot ? [1] : []
    content {
      capacity_provider = "FARGATE_SPOT"
      weight            = 1
    }
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }

  lifecycle {
    ignore_changes = [desired_count] # owned by autoscaling.tf after creation
  }

  depends_on = [aws_ecs_cluster_capacity_providers.main]
}
