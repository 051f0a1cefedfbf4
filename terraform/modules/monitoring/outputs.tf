output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "dashboard_url" {
  description = "Console URL of the dashboard."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this.dashboard_name}"
}

output "alarm_names" {
  description = "Names of the alarms."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.dlq_depth : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.dlq_new_letters : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.oldest_message : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.lambda_errors : a.alarm_name],
  )
}

output "ecs_task_failure_rule_name" {
  description = "EventBridge rule that reports failed ECS worker tasks to the alarm topic."
  value       = aws_cloudwatch_event_rule.ecs_task_failed.name
}

output "dashboard_widget_titles" {
  description = "Titles of the dashboard's metric widgets (what `terraform test` checks)."
  value       = [for w in local.widgets : w.properties.title if w.type == "metric"]
}
