# The wiring: what every function and the task are told (BOTTLESYNC_*), from
# the seed's variables. A mock provider; distinct queue URLs and ARNs come from
# overrides, since the provider checks ARNs even under a mock.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b"] }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mirror-test" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/bottlesync-test-ledger" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/bottlesync-test" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:bottlesync-test-alarms" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bottlesync-test-slack-AbCdEf" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:mock" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:cluster/bottlesync-test" }
  }
  mock_resource "aws_ecs_service" {
    defaults = { id = "arn:aws:ecs:us-east-1:123456789012:service/bottlesync-test/bottlesync-test-worker" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/bottlesync-test-worker:1" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:mock" }
  }
  mock_resource "aws_appautoscaling_policy" {
    defaults = { arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:mock" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
}

override_resource {
  target = module.queues.aws_sqs_queue.lambda
  values = { arn = "arn:aws:sqs:us-east-1:123456789012:bottlesync-test-work", url = "https://sqs.us-east-1.amazonaws.com/123456789012/bottlesync-test-work", name = "bottlesync-test-work" }
}

override_resource {
  target = module.queues.aws_sqs_queue.ecs
  values = { arn = "arn:aws:sqs:us-east-1:123456789012:bottlesync-test-work-large", url = "https://sqs.us-east-1.amazonaws.com/123456789012/bottlesync-test-work-large", name = "bottlesync-test-work-large", visibility_timeout_seconds = 300 }
}

override_resource {
  target = module.queues.aws_sqs_queue.dlq
  values = { arn = "arn:aws:sqs:us-east-1:123456789012:bottlesync-test-dlq", url = "https://sqs.us-east-1.amazonaws.com/123456789012/bottlesync-test-dlq", name = "bottlesync-test-dlq" }
}

variables {
  environment                  = "test"
  s3_bucket_name               = "mirror-test"
  worker_image                 = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/bottlesync/worker:1.2.3"
  planner_zip_path             = "main.tf"
  worker_zip_path              = "main.tf"
  slack_webhook_url            = "https://hooks.slack.com/services/T000/B000/SECRET"
  external_hash_file_s3_bucket = "other-mirror"
  external_hash_file_s3_key    = "/homebrew/bottles_hash.json"
  size_threshold_gb            = 12.5
}

run "settings_every_function_and_the_task_get" {
  command = apply

  assert {
    condition = output.planner_environment == tomap({
      BOTTLESYNC_BUCKET                    = "mirror-test"
      BOTTLESYNC_PREFIX                    = "homebrew"
      BOTTLESYNC_QUEUE_URL                 = "https://sqs.us-east-1.amazonaws.com/123456789012/bottlesync-test-work"
      BOTTLESYNC_LARGE_QUEUE_URL           = "https://sqs.us-east-1.amazonaws.com/123456789012/bottlesync-test-work-large"
      BOTTLESYNC_DLQ_URL                   = "https://sqs.us-east-1.amazonaws.com/123456789012/bottlesync-test-dlq"
      BOTTLESYNC_LEDGER_TABLE              = "bottlesync-test-ledger"
      BOTTLESYNC_API_URL                   = "https://formulae.brew.sh/api"
      BOTTLESYNC_TAGS                      = "auto"
      BOTTLESYNC_SIZE_THRESHOLD_GB         = "12.5"
      BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB      = "5"
      BOTTLESYNC_SLACK_SECRET_ARN          = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bottlesync-test-slack-AbCdEf"
      BOTTLESYNC_EXTERNAL_HASH_FILE        = "s3://other-mirror/homebrew/bottles_hash.json"
      BOTTLESYNC_ENVIRONMENT               = "test"
      BOTTLESYNC_ECS_CLUSTER               = "bottlesync-test"
      BOTTLESYNC_ECS_SERVICE               = "bottlesync-test-worker"
      BOTTLESYNC_ECS_WAKE_TASKS            = "1"
      BOTTLESYNC_PROGRESS_INTERVAL_SECONDS = "900"
      BOTTLESYNC_RUN_STALL_MINUTES         = "30"
      BOTTLESYNC_SEGMENT_SIZE              = "64MiB"
      BOTTLESYNC_CONNECTIONS_PER_BOTTLE    = "4"
      BOTTLESYNC_LOG_GROUP                 = "/aws/lambda/bottlesync-test-planner"
      BOTTLESYNC_PORTABLE_RUBY             = "auto"
    })
    error_message = "the planner's settings"
  }
  assert {
    condition     = tomap(merge(output.worker_environment, { BOTTLESYNC_LOG_GROUP = "" })) == tomap({ for k, v in merge(output.planner_environment, { BOTTLESYNC_LOG_GROUP = "" }) : k => v if k != "BOTTLESYNC_PORTABLE_RUBY" })
    error_message = "the worker Lambda gets the same settings, with its own log group (Portable Ruby is the planner's alone)"
  }
  assert {
    condition = tomap(merge(output.ecs_task_environment, { BOTTLESYNC_LOG_GROUP = "" })) == tomap({ for k, v in merge(output.planner_environment, {
      BOTTLESYNC_LOG_GROUP = "", BOTTLESYNC_VISIBILITY_TIMEOUT = "300"
    }) : k => v if k != "BOTTLESYNC_PORTABLE_RUBY" })
    error_message = "the ECS task gets the same settings plus BOTTLESYNC_VISIBILITY_TIMEOUT (the ECS queue's)"
  }
  assert {
    condition = alltrue([for env in [output.planner_environment, output.worker_environment, output.ecs_task_environment] :
      !contains(values(env), nonsensitive(var.slack_webhook_url)) && !contains(keys(env), "BOTTLESYNC_SLACK_WEBHOOK_URL")
    ])
    error_message = "the webhook URL is never in an environment (only the secret's ARN)"
  }
  assert {
    condition     = output.ecs_command == ["bottlesync", "work", "--concurrency", "4"]
    error_message = "the ECS task's command"
  }
  assert {
    condition     = one([for s in output.iam_policies.ecs-execution.Statement : s.Resource if s.Sid == "EcrPull"]) == tolist(["arn:aws:ecr:eu-west-1:123456789012:repository/bottlesync/worker"])
    error_message = "the execution role pulls from the image's ECR repository only"
  }
  assert {
    condition     = one([for s in output.iam_policies.planner.Statement : s.Resource if s.Sid == "ExternalHashFile"]) == ["arn:aws:s3:::other-mirror/homebrew/bottles_hash.json"]
    error_message = "the planner may read the external hash file in S3"
  }
}

run "portable_ruby_pinned_reaches_the_planner" {
  command = apply

  variables {
    portable_ruby = "3.4.8"
  }

  assert {
    condition     = output.planner_environment.BOTTLESYNC_PORTABLE_RUBY == "3.4.8"
    error_message = "portable_ruby is the planner's BOTTLESYNC_PORTABLE_RUBY"
  }
}

run "portable_ruby_must_be_auto_off_or_a_version" {
  command = plan

  variables {
    portable_ruby = "latest"
  }

  expect_failures = [var.portable_ruby]
}

run "external_hash_file_url_and_no_slack" {
  command = apply

  variables {
    slack_webhook_url      = null
    external_hash_file_url = "https://mirror.example/bottles_hash.json"
    worker_image           = "ghcr.io/example/bottlesync:1.2.3"
    mirror_prefix          = ""
  }

  assert {
    condition     = output.planner_environment.BOTTLESYNC_EXTERNAL_HASH_FILE == "https://mirror.example/bottles_hash.json"
    error_message = "the URL wins over the S3 pair"
  }
  assert {
    condition = alltrue([for k in ["BOTTLESYNC_SLACK_SECRET_ARN", "BOTTLESYNC_PREFIX"] :
      !contains(keys(output.planner_environment), k)
    ])
    error_message = "unset settings are left out (no Slack, no prefix)"
  }
  assert {
    condition     = length([for s in output.iam_policies.ecs-execution.Statement : s if startswith(s.Sid, "Ecr")]) == 0
    error_message = "no ECR permissions for an image outside ECR"
  }
  assert {
    condition     = length([for s in output.iam_policies.planner.Statement : s if s.Sid == "ExternalHashFile"]) == 0
    error_message = "an https hash file needs no S3 permission"
  }
}

run "seed_empty_strings_mean_unset" {
  command = apply

  variables {
    slack_webhook_url            = null
    external_hash_file_s3_bucket = ""
    external_hash_file_s3_key    = ""
    external_hash_file_url       = ""
  }

  assert {
    condition     = !contains(keys(output.planner_environment), "BOTTLESYNC_EXTERNAL_HASH_FILE")
    error_message = "empty strings (as in the seed's tfvars) mean no external hash file"
  }
}

run "notifications_on_without_a_webhook_is_an_error" {
  command = plan

  variables {
    slack_webhook_url    = null
    enable_notifications = true
  }

  expect_failures = [var.enable_notifications]
}

run "notifications_off_despite_a_webhook" {
  command = apply

  variables {
    enable_notifications = false
  }

  assert {
    condition     = !contains(keys(output.planner_environment), "BOTTLESYNC_SLACK_SECRET_ARN") && output.slack_secret_arn == null
    error_message = "enable_notifications = false wins over a configured webhook"
  }
}

run "segmented_download_settings" {
  command = apply

  variables {
    segment_size_mib       = 128
    connections_per_bottle = 8
  }

  assert {
    condition = alltrue([for env in [output.worker_environment, output.ecs_task_environment] :
      env.BOTTLESYNC_SEGMENT_SIZE == "128MiB" && env.BOTTLESYNC_CONNECTIONS_PER_BOTTLE == "8"
    ])
    error_message = "the worker Lambda and the ECS task get the segment settings"
  }
}

run "rejects_a_zero_connection_count" {
  command = plan
  variables {
    connections_per_bottle = 0
  }
  expect_failures = [var.connections_per_bottle]
}

run "rejects_bad_environment_name" {
  command = plan
  variables {
    environment = "Prod Env"
  }
  expect_failures = [var.environment]
}

run "reconcile_schedule_and_stall_setting" {
  command = apply

  variables {
    run_stall_minutes             = 45
    reconcile_schedule_expression = "rate(5 minutes)"
  }

  assert {
    condition = alltrue([for env in [output.planner_environment, output.worker_environment, output.ecs_task_environment] :
      env.BOTTLESYNC_RUN_STALL_MINUTES == "45"
    ])
    error_message = "the planner (which reconciles), the worker Lambda and the ECS task all get BOTTLESYNC_RUN_STALL_MINUTES"
  }
  assert {
    # The reconcile needs the DLQ and both work queues.
    condition     = alltrue([for k in ["BOTTLESYNC_DLQ_URL", "BOTTLESYNC_QUEUE_URL", "BOTTLESYNC_LARGE_QUEUE_URL"] : contains(keys(output.planner_environment), k)])
    error_message = "the planner knows the DLQ and both work queues"
  }
  assert {
    condition     = output.reconcile_schedule_expression == "rate(5 minutes)" && module.schedule.reconcile_rule_name == "bottlesync-test-reconcile"
    error_message = "reconcile_schedule_expression reaches the reconcile rule"
  }
  assert {
    condition     = toset(one([for s in output.iam_policies.ecs-task.Statement : s.Action if s.Sid == "TaskScaleInProtection"])) == toset(["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"]) && one([for s in output.iam_policies.ecs-task.Statement : s.Resource if s.Sid == "TaskScaleInProtection"]) == ["arn:aws:ecs:us-east-1:123456789012:task/bottlesync-test/*"]
    error_message = "the task role may protect the worker cluster's tasks from scale-in"
  }
}

run "rejects_two_receives" {
  command = plan
  variables {
    max_receive_count = 2
  }
  expect_failures = [var.max_receive_count]
}

run "rejects_a_stall_shorter_than_five_minutes" {
  command = plan
  variables {
    run_stall_minutes = 4
  }
  expect_failures = [var.run_stall_minutes]
}

run "rejects_a_reconcile_expression_that_is_not_rate_or_cron" {
  command = plan
  variables {
    reconcile_schedule_expression = "10 minutes"
  }
  expect_failures = [var.reconcile_schedule_expression]
}
