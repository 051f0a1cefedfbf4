# The schedule module's own logic, with a mock provider.

mock_provider "aws" {
  # The provider checks ARNs even under a mock.
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/bottlesync-test-planner" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:bottlesync-test-schedule-dlq" }
  }
}

override_resource {
  target = aws_cloudwatch_event_rule.reconcile
  values = { arn = "arn:aws:events:us-east-1:123456789012:rule/bottlesync-test-reconcile" }
}

variables {
  name_prefix           = "bottlesync-test"
  planner_function_arn  = "arn:aws:lambda:us-east-1:123456789012:function:bottlesync-test-planner"
  planner_function_name = "bottlesync-test-planner"
}

run "weekly_with_retries_and_a_dlq" {
  command = apply

  assert {
    condition     = aws_cloudwatch_event_rule.planner.schedule_expression == "cron(0 3 ? * SUN *)" && aws_cloudwatch_event_rule.planner.state == "ENABLED"
    error_message = "Sundays 03:00 UTC by default"
  }
  assert {
    condition     = aws_cloudwatch_event_target.planner.arn == var.planner_function_arn && aws_cloudwatch_event_target.planner.input == null
    error_message = "the planner gets the scheduled event itself (source aws.events)"
  }
  assert {
    condition     = one(aws_cloudwatch_event_target.planner.retry_policy).maximum_retry_attempts == 4
    error_message = "retry policy"
  }
  assert {
    condition     = one(aws_cloudwatch_event_target.planner.dead_letter_config).arn == aws_sqs_queue.dlq.arn
    error_message = "undelivered events go to the schedule's DLQ"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_policy.dlq.policy).Statement[0].Condition.ArnEquals["aws:SourceArn"] == [aws_cloudwatch_event_rule.planner.arn, aws_cloudwatch_event_rule.reconcile.arn]
    error_message = "only these rules may write to the DLQ"
  }
  assert {
    condition     = aws_lambda_permission.events.principal == "events.amazonaws.com" && aws_lambda_permission.events.source_arn == aws_cloudwatch_event_rule.planner.arn
    error_message = "only this rule may invoke the planner"
  }
}

run "reconcile_every_ten_minutes" {
  command = apply

  assert {
    condition     = aws_cloudwatch_event_rule.reconcile.schedule_expression == "rate(10 minutes)" && aws_cloudwatch_event_rule.reconcile.state == "ENABLED"
    error_message = "the reconcile runs every 10 minutes by default"
  }
  assert {
    # Exactly the event the planner Lambda answers with a reconcile.
    condition     = aws_cloudwatch_event_target.reconcile.arn == var.planner_function_arn && aws_cloudwatch_event_target.reconcile.input == "{\"kind\":\"reconcile\"}"
    error_message = "the reconcile target invokes the planner with {\"kind\": \"reconcile\"}"
  }
  assert {
    condition     = one(aws_cloudwatch_event_target.reconcile.dead_letter_config).arn == aws_sqs_queue.dlq.arn
    error_message = "undelivered reconcile events go to the schedule's DLQ"
  }
  assert {
    condition     = aws_lambda_permission.reconcile.principal == "events.amazonaws.com" && aws_lambda_permission.reconcile.source_arn == aws_cloudwatch_event_rule.reconcile.arn && aws_lambda_permission.reconcile.function_name == var.planner_function_name
    error_message = "the reconcile rule may invoke the planner"
  }
}

run "reconcile_keeps_running_when_the_schedule_is_paused" {
  command = plan
  variables {
    enabled                       = false
    reconcile_schedule_expression = "cron(*/5 * * * ? *)"
  }
  assert {
    condition     = aws_cloudwatch_event_rule.reconcile.state == "ENABLED" && aws_cloudwatch_event_rule.reconcile.schedule_expression == "cron(*/5 * * * ? *)"
    error_message = "a run started by hand must still end: the reconcile is not paused"
  }
}

run "rejects_reconcile_expression_that_is_not_rate_or_cron" {
  command = plan
  variables {
    reconcile_schedule_expression = "every 10 minutes"
  }
  expect_failures = [var.reconcile_schedule_expression]
}

run "paused" {
  command = plan
  variables {
    enabled             = false
    schedule_expression = "rate(1 day)"
  }
  assert {
    condition     = aws_cloudwatch_event_rule.planner.state == "DISABLED"
    error_message = "enabled = false pauses the rule"
  }
}

run "rejects_five_field_cron" {
  command = plan
  variables {
    schedule_expression = "cron(0 3 * * 0)"
  }
  expect_failures = [var.schedule_expression]
}

run "rejects_unix_crontab" {
  command = plan
  variables {
    schedule_expression = "0 3 * * SUN"
  }
  expect_failures = [var.schedule_expression]
}
