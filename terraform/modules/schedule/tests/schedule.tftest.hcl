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
    condition     = jsondecode(aws_sqs_queue_policy.dlq.policy).Statement[0].Condition.ArnEquals["aws:SourceArn"] == aws_cloudwatch_event_rule.planner.arn
    error_message = "only this rule may write to the DLQ"
  }
  assert {
    condition     = aws_lambda_permission.events.principal == "events.amazonaws.com" && aws_lambda_permission.events.source_arn == aws_cloudwatch_event_rule.planner.arn
    error_message = "only this rule may invoke the planner"
  }
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
