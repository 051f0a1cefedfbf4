# The dashboard and the alarms. Alarms and ECS task failures go to the SNS
# topic of the notifications module.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region = data.aws_region.current.name
  queues = {
    lambda = var.lambda_queue_name
    ecs    = var.ecs_queue_name
    dlq    = var.dlq_name
  }
  functions = {
    planner = var.planner_function_name
    worker  = var.worker_function_name
  }
  ns = var.metrics_namespace

  queue_depth_widgets = [for key, name in local.queues : {
    type   = "metric"
    width  = 8
    height = 6
    properties = {
      title  = "Queue ${name}"
      region = local.region
      stat   = "Maximum"
      period = 60
      metrics = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name, { label = "visible" }],
        [".", "ApproximateNumberOfMessagesNotVisible", ".", ".", { label = "in flight" }],
        [".", "ApproximateAgeOfOldestMessage", ".", ".", { label = "age of oldest (s)", yAxis = "right" }],
      ]
    }
  }]

  widgets = concat(
    [{
      type   = "text"
      width  = 24
      height = 2
      properties = {
        markdown = "## bottlesync ${var.name_prefix}\nQueues, workers and the fleet's own metrics (namespace `${local.ns}`, Environment `${var.environment}`). A message in the DLQ is a bottle that failed every attempt: see terraform/README.md to replay it."
      }
    }],
    local.queue_depth_widgets,
    [
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = {
          title  = "Messages sent / deleted"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = [
            ["AWS/SQS", "NumberOfMessagesSent", "QueueName", var.lambda_queue_name, { label = "sent (Lambda queue)" }],
            [".", "NumberOfMessagesDeleted", ".", ".", { label = "deleted (Lambda queue)" }],
            [".", "NumberOfMessagesSent", ".", var.ecs_queue_name, { label = "sent (ECS queue)" }],
            [".", "NumberOfMessagesDeleted", ".", ".", { label = "deleted (ECS queue)" }],
            [".", "NumberOfMessagesSent", ".", var.dlq_name, { label = "sent to DLQ" }],
          ]
        }
      },
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = {
          title  = "ECS worker tasks"
          region = local.region
          stat   = "Average"
          period = 60
          metrics = [
            ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", var.ecs_cluster_name, "ServiceName", var.ecs_service_name, { label = "running" }],
            [".", "DesiredTaskCount", ".", ".", ".", ".", { label = "desired" }],
            [".", "PendingTaskCount", ".", ".", ".", ".", { label = "pending" }],
          ]
        }
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title   = "Lambda errors and throttles"
          region  = local.region
          stat    = "Sum"
          period  = 300
          metrics = concat([for key, name in local.functions : [["AWS/Lambda", "Errors", "FunctionName", name, { label = "${key} errors" }], [".", "Throttles", ".", ".", { label = "${key} throttles" }]]]...)
        }
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title   = "Lambda duration (ms)"
          region  = local.region
          period  = 300
          metrics = concat([for key, name in local.functions : [["AWS/Lambda", "Duration", "FunctionName", name, { stat = "Average", label = "${key} average" }], [".", ".", ".", ".", { stat = "Maximum", label = "${key} max" }]]]...)
        }
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title   = "Worker Lambda concurrency"
          region  = local.region
          stat    = "Maximum"
          period  = 60
          metrics = [["AWS/Lambda", "ConcurrentExecutions", "FunctionName", var.worker_function_name, { label = "concurrent executions" }]]
        }
      },
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = {
          title  = "Bottles (EMF)"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = [
            [local.ns, "BottlesPlanned", "Environment", var.environment, { label = "planned" }],
            [".", "BottlesStored", ".", ".", { label = "stored" }],
            [".", "BottlesSkipped", ".", ".", { label = "skipped" }],
            [".", "BottlesFailed", ".", ".", { label = "failed" }],
          ]
        }
      },
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = {
          title  = "Bytes (EMF)"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = [
            [local.ns, "BytesPlanned", "Environment", var.environment, { label = "planned" }],
            [".", "BytesStored", ".", ".", { label = "stored" }],
          ]
        }
      },
      {
        type   = "metric"
        width  = 24
        height = 6
        properties = {
          title  = "Download and queue time (EMF, seconds)"
          region = local.region
          period = 300
          metrics = [
            [local.ns, "DownloadSeconds", "Environment", var.environment, { stat = "p50", label = "download p50" }],
            ["...", { stat = "p99", label = "download p99" }],
            [".", "TimeInQueueSeconds", ".", ".", { stat = "p50", label = "time in queue p50" }],
            ["...", { stat = "Maximum", label = "time in queue max" }],
          ]
        }
      },
    ],
  )

  alarm_name_prefix = "${var.name_prefix}-"
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({ widgets = local.widgets })
}

# ----------------------------------------------------------------- alarms ----

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each            = { work = var.dlq_name, schedule = var.schedule_dlq_name }
  alarm_name          = "${local.alarm_name_prefix}${each.key}-dlq-not-empty"
  alarm_description   = "Messages in ${each.value}: ${each.key == "work" ? "bottles that failed every attempt (replay: terraform/README.md)" : "planner runs or reconciles that never started or failed (check the planner's log group)"}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
  tags                = var.tags
}

# The depth alarm stays in ALARM while letters wait for replay, so a later
# letter would notify nobody: this one fires for every period in which new
# letters arrived (SQS counts a redrive into the DLQ as a message sent).
resource "aws_cloudwatch_metric_alarm" "dlq_new_letters" {
  for_each            = { work = var.dlq_name, schedule = var.schedule_dlq_name }
  alarm_name          = "${local.alarm_name_prefix}${each.key}-dlq-new-letters"
  alarm_description   = "New messages reached ${each.value} in the last 5 minutes (the depth alarm stays in ALARM until they are replayed, so it says nothing about new ones)."
  namespace           = "AWS/SQS"
  metric_name         = "NumberOfMessagesSent"
  dimensions          = { QueueName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_message" {
  for_each            = { lambda = var.lambda_queue_name, ecs = var.ecs_queue_name }
  alarm_name          = "${local.alarm_name_prefix}${each.key}-queue-oldest-message"
  alarm_description   = "The oldest message in ${each.value} waits for more than ${var.oldest_message_age_alarm_seconds} s: workers are stuck, failing or not running."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_message_age_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
  tags                = var.tags
}

# A run summary Slack refused for good (a revoked webhook, 404/410/403):
# the run finished without it, and its summary is only in the log
# (core/src/run/finish.rs emits SummaryRejected).
resource "aws_cloudwatch_metric_alarm" "summary_rejected" {
  alarm_name          = "${local.alarm_name_prefix}summary-rejected"
  alarm_description   = "Slack refused a run's summary for good (see the finisher's log line \"Slack refused the summary for good\", which holds the summary): check the webhook in the Slack secret."
  namespace           = local.ns
  metric_name         = "SummaryRejected"
  dimensions          = { Environment = var.environment }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = { planner = { name = var.planner_function_name, threshold = 0 }, worker = { name = var.worker_function_name, threshold = var.worker_error_threshold } }
  alarm_name          = "${local.alarm_name_prefix}${each.key}-errors"
  alarm_description   = each.key == "planner" ? "The planner failed: this week's run may not have started, or a reconcile of stalled runs failed (see its log group; retry with a manual invocation, {\"kind\": \"reconcile\"} for a reconcile)." : "The worker Lambda failed invocations (crashes or timeouts, not bottles it reported as failed)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  tags                = var.tags
}

# ECS task failures: a task that could not start, or whose worker exited
# non-zero, straight from ECS's events to the alarm topic.
resource "aws_cloudwatch_event_rule" "ecs_task_failed" {
  name        = "${var.name_prefix}-ecs-task-failed"
  description = "bottlesync ECS worker tasks that failed to start or exited non-zero"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [var.ecs_cluster_arn]
      lastStatus = ["STOPPED"]
      "$or" = [
        { stopCode = ["TaskFailedToStart"] },
        { containers = { exitCode = [{ "anything-but" = 0 }] } },
      ]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "ecs_task_failed" {
  rule      = aws_cloudwatch_event_rule.ecs_task_failed.name
  target_id = "alarm-topic"
  arn       = var.alarm_topic_arn

  input_transformer {
    input_paths = {
      task   = "$.detail.taskArn"
      reason = "$.detail.stoppedReason"
      code   = "$.detail.stopCode"
    }
    input_template = "\"bottlesync ECS worker task <task> stopped (<code>): <reason>\""
  }
}

# The service cannot place a task (no Fargate Spot capacity, a subnet out of
# addresses, an architecture the capacity provider lacks): tasks never start,
# and no task-state event is sent. ECS reports it as a service action.
resource "aws_cloudwatch_event_rule" "ecs_placement_failed" {
  name        = "${var.name_prefix}-ecs-placement-failed"
  description = "bottlesync ECS worker service could not place a task"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Service Action"]
    detail = {
      clusterArn = [var.ecs_cluster_arn]
      eventName  = ["SERVICE_TASK_PLACEMENT_FAILURE"]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "ecs_placement_failed" {
  rule      = aws_cloudwatch_event_rule.ecs_placement_failed.name
  target_id = "alarm-topic"
  arn       = var.alarm_topic_arn

  input_transformer {
    input_paths = {
      service = "$.resources[0]"
      reason  = "$.detail.reason"
    }
    input_template = "\"bottlesync ECS worker service <service> cannot place tasks: <reason>\""
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn = var.alarm_topic_arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountOwner"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:DeleteTopic"]
        Resource  = var.alarm_topic_arn
      },
      {
        Sid       = "CloudWatchAlarms"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = var.alarm_topic_arn
        Condition = {
          ArnLike      = { "aws:SourceArn" = "arn:${data.aws_partition.current.partition}:cloudwatch:${local.region}:${data.aws_caller_identity.current.account_id}:alarm:${local.alarm_name_prefix}*" }
          StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
        }
      },
      {
        Sid       = "EcsTaskFailureEvents"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = var.alarm_topic_arn
        Condition = { ArnEquals = { "aws:SourceArn" = [aws_cloudwatch_event_rule.ecs_task_failed.arn, aws_cloudwatch_event_rule.ecs_placement_failed.arn] } }
      },
    ]
  })
}
