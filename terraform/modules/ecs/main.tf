# The large-run workers: a Fargate service at zero tasks that queue depth
# scales up (a step policy wakes it from zero, target tracking on backlog per
# task sizes it) and back to zero once the queue is idle.

data "aws_region" "current" {}

locals {
  container_name = "worker"
  command        = ["bottlesync", "work", "--concurrency", tostring(var.worker_concurrency)]
  environment = merge(var.environment, {
    BOTTLESYNC_LOG_GROUP          = aws_cloudwatch_log_group.worker.name
    BOTTLESYNC_VISIBILITY_TIMEOUT = tostring(var.visibility_timeout_seconds)
  })
  # FARGATE is always in the strategy: it carries the on-demand base (the
  # task that wakes the service from zero), whatever its weight.
  capacity_providers  = { for name, weight in { FARGATE_SPOT = var.fargate_spot_weight, FARGATE = var.fargate_weight } : name => weight if weight > 0 || name == "FARGATE" }
  scaling_resource_id = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.worker.name}"
  sqs_dimensions      = { QueueName = var.queue_name }
  service_dimensions  = { ClusterName = aws_ecs_cluster.this.name, ServiceName = aws_ecs_service.worker.name }
}

resource "aws_ecs_cluster" "this" {
  name = var.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  dynamic "default_capacity_provider_strategy" {
    for_each = local.capacity_providers
    content {
      capacity_provider = default_capacity_provider_strategy.key
      weight            = default_capacity_provider_strategy.value
    }
  }
}

resource "aws_cloudwatch_log_group" "worker" {
  #checkov:skip=CKV_AWS_338:Retention is a variable (30 days by default): these are operational logs, and a year of them costs more than the mirror's compute.
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group; pass kms_key_arn for a customer-managed key.
  name              = "/ecs/${var.cluster_name}/${var.service_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_task_definition" "worker" {
  family                   = var.service_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  task_role_arn            = var.task_role_arn
  execution_role_arn       = var.execution_role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Downloads stream to S3; /tmp is the only writable path.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name        = local.container_name
    image       = var.image
    essential   = true
    command     = local.command
    environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    # SIGTERM, then SIGKILL after 120 s (the Fargate maximum): the worker
    # finishes or abandons in-flight bottles within ~90 s.
    stopTimeout            = 120
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = local.container_name
      }
    }
  }])
  tags = var.tags
}

resource "aws_ecs_service" "worker" {
  #checkov:skip=CKV_AWS_333:The default network has public subnets and no NAT gateway (a NAT gateway costs more than the rest of the system): tasks need a public IP for egress; the security group allows no inbound traffic. Set assign_public_ip = false with private subnets and NAT.
  name                               = var.service_name
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.worker.arn
  desired_count                      = 0
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = false

  dynamic "capacity_provider_strategy" {
    for_each = local.capacity_providers
    content {
      capacity_provider = capacity_provider_strategy.key
      weight            = capacity_provider_strategy.value
      # The first tasks run on demand: a Spot shortage (or reclaim) never
      # leaves a woken run without a worker.
      base = capacity_provider_strategy.key == "FARGATE" ? var.fargate_base : 0
    }
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  # Queue-depth scaling and the planner own the task count.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_ecs_cluster_capacity_providers.this]
  tags       = var.tags
}

# ------------------------------------------------------ queue-depth scaling ----

resource "aws_appautoscaling_target" "worker" {
  count              = var.enable_autoscaling ? 1 : 0
  service_namespace  = "ecs"
  resource_id        = local.scaling_resource_id
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = 0
  max_capacity       = var.max_tasks
  tags               = var.tags
}

# Target tracking on backlog per task (AWS's recommendation for queue
# workers): visible messages / running tasks. It cannot act at zero tasks
# (no running tasks, no metric), hence the wake policy below. It never scales
# in, so that no download is interrupted mid-run: the idle policy below takes
# the service to zero once the queue is empty.
resource "aws_appautoscaling_policy" "backlog_per_task" {
  count              = var.enable_autoscaling ? 1 : 0
  name               = "${var.service_name}-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker[0].service_namespace
  resource_id        = aws_appautoscaling_target.worker[0].resource_id
  scalable_dimension = aws_appautoscaling_target.worker[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.target_backlog_per_task
    disable_scale_in   = true
    scale_out_cooldown = 60

    customized_metric_specification {
      metrics {
        id          = "visible"
        label       = "Messages visible"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = var.queue_name
            }
          }
        }
      }
      metrics {
        id          = "running"
        label       = "Running tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker.name
            }
          }
        }
      }
      metrics {
        id          = "backlog"
        label       = "Backlog per task"
        expression  = "visible / running"
        return_data = true
      }
    }
  }
}

# Wake from zero: messages wait and no task is wanted -> wake_tasks tasks.
resource "aws_appautoscaling_policy" "wake" {
  count              = var.enable_autoscaling ? 1 : 0
  name               = "${var.service_name}-wake-from-zero"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker[0].service_namespace
  resource_id        = aws_appautoscaling_target.worker[0].resource_id
  scalable_dimension = aws_appautoscaling_target.worker[0].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"
    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = var.wake_tasks
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "wake" {
  count               = var.enable_autoscaling ? 1 : 0
  alarm_name          = "${var.service_name}-wake-from-zero"
  alarm_description   = "Messages wait in ${var.queue_name} and the worker service wants no task: start ${var.wake_tasks}."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0.5
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.wake[0].arn]

  metric_query {
    id          = "wake"
    label       = "Waiting with no task wanted"
    expression  = "IF(visible > 0 AND FILL(desired, 0) == 0, 1, 0)"
    return_data = true
  }
  metric_query {
    id = "visible"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesVisible"
      dimensions  = local.sqs_dimensions
      period      = 60
      stat        = "Maximum"
    }
  }
  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = local.service_dimensions
      period      = 60
      stat        = "Maximum"
    }
  }
  tags = var.tags
}

# Scale to zero: nothing visible and nothing in flight for scale_in_idle_minutes.
resource "aws_appautoscaling_policy" "idle" {
  count              = var.enable_autoscaling ? 1 : 0
  name               = "${var.service_name}-scale-to-zero"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker[0].service_namespace
  resource_id        = aws_appautoscaling_target.worker[0].resource_id
  scalable_dimension = aws_appautoscaling_target.worker[0].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"
    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = 0
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "idle" {
  count               = var.enable_autoscaling ? 1 : 0
  alarm_name          = "${var.service_name}-scale-to-zero"
  alarm_description   = "${var.queue_name} has been empty for ${var.scale_in_idle_minutes} minutes: stop the workers."
  comparison_operator = "LessThanThreshold"
  threshold           = 0.5
  evaluation_periods  = var.scale_in_idle_minutes
  datapoints_to_alarm = var.scale_in_idle_minutes
  # Missing data is not idleness: SQS stops publishing metrics for a queue
  # idle for hours, and "breaching" would then keep this alarm in ALARM,
  # with Application Auto Scaling re-applying desired count 0 every minute,
  # undoing the planner's wake before the first message shows in the
  # metrics. A service at zero needs no alarm to stay there; a service that
  # ran has real zeros to alarm on.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_appautoscaling_policy.idle[0].arn]

  metric_query {
    id          = "pending"
    label       = "Messages visible or in flight"
    expression  = "visible + inflight"
    return_data = true
  }
  metric_query {
    id = "visible"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesVisible"
      dimensions  = local.sqs_dimensions
      period      = 60
      stat        = "Maximum"
    }
  }
  metric_query {
    id = "inflight"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesNotVisible"
      dimensions  = local.sqs_dimensions
      period      = 60
      stat        = "Maximum"
    }
  }
  tags = var.tags
}
