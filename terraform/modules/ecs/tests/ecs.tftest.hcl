# The ecs module's own logic, with a mock provider.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
}

variables {
  cluster_name               = "bottlesync-test"
  service_name               = "bottlesync-test-worker"
  image                      = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bottlesync:1.0.0"
  task_role_arn              = "arn:aws:iam::123456789012:role/task"
  execution_role_arn         = "arn:aws:iam::123456789012:role/execution"
  environment                = { BOTTLESYNC_BUCKET = "mirror", BOTTLESYNC_LARGE_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/q" }
  visibility_timeout_seconds = 300
  queue_name                 = "bottlesync-test-work-large"
  subnet_ids                 = ["subnet-1", "subnet-2"]
  security_group_ids         = ["sg-1"]
}

run "service_at_zero_on_spot_and_fargate" {
  command = plan

  assert {
    condition     = aws_ecs_service.worker.desired_count == 0
    error_message = "the service starts at zero tasks"
  }
  assert {
    condition = toset([for s in aws_ecs_service.worker.capacity_provider_strategy : "${s.capacity_provider}=${s.weight}+${s.base}"]) == toset([
      "FARGATE_SPOT=3+0", "FARGATE=1+1",
    ])
    error_message = "FARGATE_SPOT and FARGATE capacity providers, weighted, the first task on demand"
  }
  assert {
    condition     = one(aws_ecs_service.worker.network_configuration).assign_public_ip == true
    error_message = "public IPs by default (no NAT)"
  }
  assert {
    condition     = one([for s in aws_ecs_cluster.this.setting : s.value if s.name == "containerInsights"]) == "enabled"
    error_message = "Container Insights (RunningTaskCount for scaling)"
  }
}

run "task_definition" {
  command = plan

  variables {
    worker_concurrency = 6
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].command == ["bottlesync", "work", "--concurrency", "6"]
    error_message = "the worker command"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].stopTimeout == 120
    error_message = "stopTimeout 120 (the worker needs ~90 s after SIGTERM)"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].logConfiguration.logDriver == "awslogs"
    error_message = "awslogs"
  }
  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment : e.name => e.value
    }["BOTTLESYNC_VISIBILITY_TIMEOUT"] == "300"
    error_message = "BOTTLESYNC_VISIBILITY_TIMEOUT equals the queue's visibility timeout"
  }
  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment : e.name => e.value
    }["BOTTLESYNC_LOG_GROUP"] == "/ecs/bottlesync-test/bottlesync-test-worker"
    error_message = "BOTTLESYNC_LOG_GROUP names the task's log group"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].readonlyRootFilesystem == true
    error_message = "read-only root file system"
  }
}

run "queue_depth_scaling" {
  command = plan

  assert {
    condition     = aws_appautoscaling_target.worker[0].min_capacity == 0 && aws_appautoscaling_target.worker[0].max_capacity == 10
    error_message = "scales between 0 and max_tasks"
  }
  assert {
    condition = one([
      for m in one(one(aws_appautoscaling_policy.backlog_per_task[0].target_tracking_scaling_policy_configuration).customized_metric_specification).metrics :
      m.expression if m.return_data
    ]) == "visible / running"
    error_message = "target tracking on backlog per task (metric math)"
  }
  assert {
    condition     = one(aws_appautoscaling_policy.backlog_per_task[0].target_tracking_scaling_policy_configuration).target_value == 50
    error_message = "target backlog per task"
  }
  assert {
    condition     = one(one(aws_appautoscaling_policy.wake[0].step_scaling_policy_configuration).step_adjustment).scaling_adjustment == 1
    error_message = "the wake policy starts wake_tasks tasks"
  }
  assert {
    condition     = one(one(aws_appautoscaling_policy.idle[0].step_scaling_policy_configuration).step_adjustment).scaling_adjustment == 0
    error_message = "the idle policy scales to zero"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.idle[0].evaluation_periods == 15
    error_message = "scale to zero after 15 idle minutes"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.idle[0].treat_missing_data == "notBreaching"
    error_message = "no metrics (SQS stops publishing for an idle queue) must not keep the scale-to-zero alarm in ALARM: it would re-apply desired count 0 every minute and undo the planner's wake"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.wake[0].treat_missing_data == "notBreaching"
    error_message = "no metrics wake nothing"
  }
}

run "moto_switch_drops_scaling" {
  command = plan
  variables {
    enable_autoscaling  = false
    fargate_spot_weight = 0
  }
  assert {
    condition     = length(aws_appautoscaling_target.worker) == 0 && length(aws_appautoscaling_policy.wake) == 0 && length(aws_cloudwatch_metric_alarm.idle) == 0
    error_message = "enable_autoscaling = false removes target, policies and alarms"
  }
  assert {
    condition     = [for s in aws_ecs_service.worker.capacity_provider_strategy : s.capacity_provider] == ["FARGATE"]
    error_message = "a zero weight leaves the provider out"
  }
}

run "rejects_no_capacity_provider" {
  command = plan
  variables {
    fargate_spot_weight = 0
    fargate_weight      = 0
  }
  expect_failures = [var.fargate_weight]
}

run "spot_only_still_wakes_on_demand" {
  command = plan
  variables {
    fargate_weight = 0
  }
  assert {
    condition = toset([for s in aws_ecs_service.worker.capacity_provider_strategy : "${s.capacity_provider}=${s.weight}+${s.base}"]) == toset([
      "FARGATE_SPOT=3+0", "FARGATE=0+1",
    ])
    error_message = "with no on-demand weight the wake task is still on demand"
  }
}

run "rejects_arm64_on_spot" {
  command = plan
  variables {
    cpu_architecture = "ARM64"
  }
  expect_failures = [var.fargate_spot_weight]
}

run "arm64_on_demand_only" {
  command = plan
  variables {
    cpu_architecture    = "ARM64"
    fargate_spot_weight = 0
  }
  assert {
    condition     = [for s in aws_ecs_service.worker.capacity_provider_strategy : s.capacity_provider] == ["FARGATE"]
    error_message = "ARM64 runs on FARGATE only"
  }
}

run "rejects_non_fargate_cpu" {
  command = plan
  variables {
    cpu = 1000
  }
  expect_failures = [var.cpu]
}

# terraform-aws-modules users expect `tags` on every resource that takes them.
run "tags_reach_the_resources" {
  command = plan
  variables {
    tags = { CostCenter = "platform" }
  }
  assert {
    condition     = alltrue([for r in [aws_ecs_cluster.this.tags, aws_ecs_service.worker.tags, aws_ecs_task_definition.worker.tags, aws_cloudwatch_log_group.worker.tags] : r == var.tags])
    error_message = "the module's resources carry var.tags"
  }
}
