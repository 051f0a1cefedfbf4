# The lambda module's own logic, with a mock provider. The zips only need to
# exist (their hash goes into the plan): any file of the module will do.

mock_provider "aws" {}

variables {
  name_prefix         = "bottlesync-test"
  planner_zip_path    = "main.tf"
  worker_zip_path     = "main.tf"
  planner_role_arn    = "arn:aws:iam::123456789012:role/planner"
  worker_role_arn     = "arn:aws:iam::123456789012:role/worker"
  planner_environment = { BOTTLESYNC_BUCKET = "mirror", BOTTLESYNC_LEDGER_TABLE = "ledger" }
  worker_environment  = { BOTTLESYNC_BUCKET = "mirror", BOTTLESYNC_LEDGER_TABLE = "ledger" }
  queue_arn           = "arn:aws:sqs:us-east-1:123456789012:bottlesync-test-work"
}

run "custom_runtime_arm64_json_logs" {
  command = plan

  assert {
    condition = alltrue([for f in [aws_lambda_function.planner, aws_lambda_function.worker] :
      f.runtime == "provided.al2023" && f.handler == "bootstrap" && f.architectures == tolist(["arm64"])
    ])
    error_message = "both functions: provided.al2023, bootstrap, arm64"
  }
  assert {
    condition = alltrue([for f in [aws_lambda_function.planner, aws_lambda_function.worker] :
      one(f.logging_config).log_format == "JSON"
    ])
    error_message = "JSON logging"
  }
  assert {
    condition     = aws_cloudwatch_log_group.function["worker"].name == "/aws/lambda/bottlesync-test-worker" && aws_cloudwatch_log_group.function["worker"].retention_in_days == 30
    error_message = "log groups named as Lambda expects, with retention"
  }
  assert {
    condition     = one(aws_lambda_function.worker.environment).variables.BOTTLESYNC_LOG_GROUP == "/aws/lambda/bottlesync-test-worker"
    error_message = "BOTTLESYNC_LOG_GROUP names the function's own log group"
  }
  assert {
    condition     = one(aws_lambda_function.planner.environment).variables.BOTTLESYNC_BUCKET == "mirror"
    error_message = "the given settings reach the function"
  }
  assert {
    condition     = length(aws_lambda_function.planner.dead_letter_config) == 0
    error_message = "no planner DLQ unless given"
  }
}

run "sqs_event_source_reports_batch_item_failures" {
  command = plan

  variables {
    maximum_concurrency = 50
    batch_size          = 4
  }

  assert {
    condition     = aws_lambda_event_source_mapping.worker[0].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "ReportBatchItemFailures"
  }
  assert {
    condition     = one(aws_lambda_event_source_mapping.worker[0].scaling_config).maximum_concurrency == 50 && aws_lambda_event_source_mapping.worker[0].batch_size == 4
    error_message = "maximum concurrency and batch size from the variables"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.worker[0].event_source_arn == var.queue_arn
    error_message = "the worker consumes the Lambda queue"
  }
}

run "moto_switch_and_planner_dlq" {
  command = plan

  variables {
    enable_event_source_mapping = false
    planner_dead_letter_arn     = "arn:aws:sqs:us-east-1:123456789012:bottlesync-test-schedule-dlq"
  }

  assert {
    condition     = length(aws_lambda_event_source_mapping.worker) == 0
    error_message = "enable_event_source_mapping = false removes the mapping"
  }
  assert {
    condition     = one(aws_lambda_function.planner.dead_letter_config).target_arn == var.planner_dead_letter_arn
    error_message = "failed async planner invocations go to the given DLQ"
  }
}

run "rejects_missing_zip" {
  command = plan
  variables {
    worker_zip_path = "no-such-file.zip"
  }
  expect_failures = [var.worker_zip_path]
}

run "packages_from_s3" {
  command = plan
  variables {
    planner_zip_path          = null
    worker_zip_path           = null
    package_s3_bucket         = "artifacts"
    planner_s3_key            = "bottlesync/1.0.0/bottlesync-planner-lambda.zip"
    worker_s3_key             = "bottlesync/1.0.0/bottlesync-worker-lambda.zip"
    worker_s3_object_version  = "v2"
    planner_s3_object_version = null
  }
  assert {
    condition = (
      aws_lambda_function.planner.s3_bucket == "artifacts" &&
      aws_lambda_function.planner.s3_key == "bottlesync/1.0.0/bottlesync-planner-lambda.zip" &&
      aws_lambda_function.planner.filename == null &&
      aws_lambda_function.worker.s3_key == "bottlesync/1.0.0/bottlesync-worker-lambda.zip" &&
      aws_lambda_function.worker.s3_object_version == "v2"
    )
    error_message = "both functions deploy from the S3 objects"
  }
}

run "rejects_no_package" {
  command = plan
  variables {
    planner_zip_path = null
  }
  expect_failures = [var.planner_zip_path]
}

run "rejects_both_packages" {
  command = plan
  variables {
    package_s3_bucket = "artifacts"
    worker_s3_key     = "bottlesync-worker-lambda.zip"
  }
  expect_failures = [var.worker_zip_path]
}

run "rejects_concurrency_below_the_sqs_minimum" {
  command = plan
  variables {
    maximum_concurrency = 1
  }
  expect_failures = [var.maximum_concurrency]
}

run "rejects_timeout_over_15_minutes" {
  command = plan
  variables {
    worker_timeout_seconds = 1000
  }
  expect_failures = [var.worker_timeout_seconds]
}

run "planner_async_retries_are_explicit" {
  command = plan

  assert {
    condition     = aws_lambda_function_event_invoke_config.planner.function_name == "bottlesync-test-planner"
    error_message = "the invoke config is the planner's"
  }
  assert {
    condition     = aws_lambda_function_event_invoke_config.planner.maximum_retry_attempts == 2 && aws_lambda_function_event_invoke_config.planner.maximum_event_age_in_seconds == 3600
    error_message = "2 retries (a rerun resumes the interrupted run) within an hour"
  }
}

run "rejects_three_async_retries" {
  command = plan
  variables {
    planner_async_retry_attempts = 3
  }
  expect_failures = [var.planner_async_retry_attempts]
}
