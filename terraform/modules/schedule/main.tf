# The weekly trigger: an EventBridge rule that invokes the planner, with
# retries and a DLQ for events that could not be delivered. The same DLQ
# takes planner invocations that failed after Lambda's own async retries
# (the lambda module's dead_letter_config).
#
# The reconcile: a second rule invokes the planner every few minutes with
# {"kind": "reconcile"}, which finishes runs that stalled (messages lost or
# dead-lettered uncounted), so that every run ends and reports.

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name_prefix}-schedule-dlq"
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  tags                              = var.tags
}

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeDeadLetters"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.dlq.arn
      Condition = { ArnEquals = { "aws:SourceArn" = [aws_cloudwatch_event_rule.planner.arn, aws_cloudwatch_event_rule.reconcile.arn] } }
    }]
  })
}

resource "aws_cloudwatch_event_rule" "planner" {
  name                = "${var.name_prefix}-planner"
  description         = "Runs the bottlesync planner (${var.schedule_expression})"
  schedule_expression = var.schedule_expression
  state               = var.enabled ? "ENABLED" : "DISABLED"
  tags                = var.tags
}

# No input: the planner receives the scheduled event itself (source aws.events).
resource "aws_cloudwatch_event_target" "planner" {
  rule      = aws_cloudwatch_event_rule.planner.name
  target_id = "planner"
  arn       = var.planner_function_arn

  retry_policy {
    maximum_retry_attempts       = var.maximum_retry_attempts
    maximum_event_age_in_seconds = var.maximum_event_age_seconds
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

resource "aws_lambda_permission" "events" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = var.planner_function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.planner.arn
}

# ---------------------------------------------------------------- reconcile ----

resource "aws_cloudwatch_event_rule" "reconcile" {
  name                = "${var.name_prefix}-reconcile"
  description         = "Finishes bottlesync runs stalled for BOTTLESYNC_RUN_STALL_MINUTES (${var.reconcile_schedule_expression})"
  schedule_expression = var.reconcile_schedule_expression
  # Not paused with the weekly schedule: a run started by hand must end too.
  state = "ENABLED"
  tags  = var.tags
}

# The constant event the planner Lambda answers with a reconcile.
resource "aws_cloudwatch_event_target" "reconcile" {
  rule      = aws_cloudwatch_event_rule.reconcile.name
  target_id = "reconcile"
  arn       = var.planner_function_arn
  input     = jsonencode({ kind = "reconcile" })

  # The next tick comes soon: retry briefly, then leave it to that one.
  retry_policy {
    maximum_retry_attempts       = 2
    maximum_event_age_in_seconds = 300
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

resource "aws_lambda_permission" "reconcile" {
  statement_id  = "AllowEventBridgeReconcile"
  action        = "lambda:InvokeFunction"
  function_name = var.planner_function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile.arn
}
