output "slack_secret_arn" {
  description = "ARN of the secret holding the Slack webhook (BOTTLESYNC_SLACK_SECRET_ARN); null when Slack is off."
  value       = local.secret_arn
  depends_on  = [aws_secretsmanager_secret_version.slack]
}

output "alarm_topic_arn" {
  description = "ARN of the SNS topic alarms publish to."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_topic_name" {
  description = "Name of the SNS topic alarms publish to."
  value       = aws_sns_topic.alarms.name
}
