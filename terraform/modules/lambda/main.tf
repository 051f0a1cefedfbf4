# The planner and worker functions (custom runtime, one `bootstrap` binary
# each), their log groups, and the worker's SQS event source.

locals {
  function_names = {
    planner = "${var.name_prefix}-planner"
    worker  = "${var.name_prefix}-worker"
  }
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:Retention is a variable (30 days by default): these are operational logs, and a year of them costs more than the mirror's compute.
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group; pass kms_key_arn for a customer-managed key.
  for_each          = local.function_names
  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "planner" {
  #checkov:skip=CKV_AWS_117:The planner needs internet egress (formulae.brew.sh, ghcr.io); inside a VPC that means a NAT gateway, which costs more than the rest of the system.
  #checkov:skip=CKV_AWS_272:The zip is built by scripts/package.sh from this repository; add a signing profile if your organisation signs Lambda code.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (the Slack webhook lives in Secrets Manager; only its ARN is here) and is encrypted with an AWS-managed key; pass kms_key_arn for a customer-managed one.
  #checkov:skip=CKV_AWS_115:Reserving concurrency fails on accounts at the default limit of 10; concurrent planners are safe (conditional ledger writes) and planner_reserved_concurrency sets a cap.
  function_name                  = local.function_names.planner
  description                    = "bottlesync planner: plans a mirror run and enqueues one message per missing bottle"
  role                           = var.planner_role_arn
  filename                       = var.planner_zip_path
  source_code_hash               = var.planner_zip_path == null ? null : filebase64sha256(var.planner_zip_path)
  s3_bucket                      = var.planner_zip_path == null ? var.package_s3_bucket : null
  s3_key                         = var.planner_zip_path == null ? var.planner_s3_key : null
  s3_object_version              = var.planner_zip_path == null ? var.planner_s3_object_version : null
  handler                        = "bootstrap"
  runtime                        = "provided.al2023"
  architectures                  = [var.architecture]
  timeout                        = var.planner_timeout_seconds
  memory_size                    = var.planner_memory_mb
  reserved_concurrent_executions = var.planner_reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    # BOTTLESYNC_LOG_GROUP is named in failure messages; only the planner
    # plans Portable Ruby.
    variables = merge(var.planner_environment, {
      BOTTLESYNC_LOG_GROUP     = aws_cloudwatch_log_group.function["planner"].name
      BOTTLESYNC_PORTABLE_RUBY = var.portable_ruby
    })
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function["planner"].name
    application_log_level = var.application_log_level
    system_log_level      = "WARN"
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "dead_letter_config" {
    for_each = var.planner_dead_letter_arn == null ? [] : [var.planner_dead_letter_arn]
    content {
      target_arn = dead_letter_config.value
    }
  }
  tags = var.tags
}

# Asynchronous invocations of the planner (the weekly schedule, the
# reconcile, `aws lambda invoke --invocation-type Event`): set explicitly
# rather than left to Lambda's defaults (2 retries, 6 hours). A retry is
# safe and useful: a rerun of the planner resumes the run an interrupted
# invocation started (same run id, its manifest), and a reconcile is
# idempotent. Past the event age a retry is dropped (to the DLQ): by then
# the next reconcile tick has done the work.
resource "aws_lambda_function_event_invoke_config" "planner" {
  function_name                = aws_lambda_function.planner.function_name
  maximum_retry_attempts       = var.planner_async_retry_attempts
  maximum_event_age_in_seconds = var.planner_async_max_event_age_seconds
}

resource "aws_lambda_function" "worker" {
  #checkov:skip=CKV_AWS_117:The worker downloads from ghcr.io; inside a VPC that needs a NAT gateway, which costs more than the rest of the system.
  #checkov:skip=CKV_AWS_272:The zip is built by scripts/package.sh from this repository; add a signing profile if your organisation signs Lambda code.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (the Slack webhook lives in Secrets Manager; only its ARN is here) and is encrypted with an AWS-managed key; pass kms_key_arn for a customer-managed one.
  #checkov:skip=CKV_AWS_115:Concurrency is capped by the event source mapping's maximum_concurrency, which (unlike reserved concurrency) does not take capacity from other functions.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the SQS event source, where a function DLQ never applies; failed messages reach the queue's DLQ through its redrive policy.
  function_name     = local.function_names.worker
  description       = "bottlesync worker: fetches, verifies and stores one bottle per SQS message"
  role              = var.worker_role_arn
  filename          = var.worker_zip_path
  source_code_hash  = var.worker_zip_path == null ? null : filebase64sha256(var.worker_zip_path)
  s3_bucket         = var.worker_zip_path == null ? var.package_s3_bucket : null
  s3_key            = var.worker_zip_path == null ? var.worker_s3_key : null
  s3_object_version = var.worker_zip_path == null ? var.worker_s3_object_version : null
  handler           = "bootstrap"
  runtime           = "provided.al2023"
  architectures     = [var.architecture]
  timeout           = var.worker_timeout_seconds
  memory_size       = var.worker_memory_mb
  kms_key_arn       = var.kms_key_arn

  environment {
    # BOTTLESYNC_LOG_GROUP is named in failure messages.
    variables = merge(var.worker_environment, { BOTTLESYNC_LOG_GROUP = aws_cloudwatch_log_group.function["worker"].name })
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function["worker"].name
    application_log_level = var.application_log_level
    system_log_level      = "WARN"
  }

  tracing_config {
    mode = var.tracing_mode
  }
  tags = var.tags
}

resource "aws_lambda_event_source_mapping" "worker" {
  count                              = var.enable_event_source_mapping ? 1 : 0
  event_source_arn                   = var.queue_arn
  function_name                      = aws_lambda_function.worker.arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_seconds
  # The handler returns the ids of the failed records only.
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }
}
