# Where the Slack webhook comes from, with a mock provider.

mock_provider "aws" {
  # The provider checks ARNs even under a mock.
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:bottlesync-test-alarms" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:created-AbCdEf" }
  }
}

variables {
  name_prefix = "bottlesync-test"
}

run "off_by_default" {
  command = apply

  assert {
    condition     = length(aws_secretsmanager_secret.slack) == 0 && output.slack_secret_arn == null
    error_message = "no secret, no ARN when Slack is off"
  }
  assert {
    condition     = length(aws_sns_topic_subscription.email) == 0
    error_message = "no email subscriptions without addresses"
  }
}

run "webhook_url_goes_into_a_new_secret" {
  command = apply

  variables {
    enable_slack      = true
    slack_webhook_url = "https://hooks.slack.com/services/T000/B000/XXXX"
    alarm_emails      = ["ops@example.com", "oncall@example.com"]
  }

  assert {
    condition     = length(aws_secretsmanager_secret.slack) == 1 && output.slack_secret_arn == aws_secretsmanager_secret.slack[0].arn
    error_message = "the webhook is stored in a secret, whose ARN is the setting"
  }
  assert {
    condition     = aws_secretsmanager_secret_version.slack[0].secret_string_wo_version == 1
    error_message = "the URL is written write-only (never in the state)"
  }
  assert {
    condition     = length(aws_sns_topic_subscription.email) == 2 && alltrue([for s in aws_sns_topic_subscription.email : s.protocol == "email"])
    error_message = "an email subscription per address"
  }
}

run "existing_secret_is_used_as_is" {
  command = apply

  variables {
    enable_slack     = true
    slack_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:existing-AbCdEf"
  }

  assert {
    condition     = length(aws_secretsmanager_secret.slack) == 0 && output.slack_secret_arn == var.slack_secret_arn
    error_message = "an existing secret: nothing created, its ARN is the setting"
  }
}

run "slack_without_a_webhook_is_an_error" {
  command = plan
  variables {
    enable_slack = true
  }
  expect_failures = [aws_secretsmanager_secret.slack]
}

run "rejects_a_webhook_that_is_not_a_url" {
  command = plan
  variables {
    enable_slack      = true
    slack_webhook_url = "hooks.slack.com/services/x"
  }
  expect_failures = [var.slack_webhook_url]
}

run "rejects_bad_email" {
  command = plan
  variables {
    alarm_emails = ["not-an-address"]
  }
  expect_failures = [var.alarm_emails]
}
