output "rule_name" {
  description = "Name of the EventBridge rule."
  value       = aws_cloudwatch_event_rule.planner.name
}

output "rule_arn" {
  description = "ARN of the EventBridge rule."
  value       = aws_cloudwatch_event_rule.planner.arn
}

output "schedule_expression" {
  description = "When the planner runs."
  value       = aws_cloudwatch_event_rule.planner.schedule_expression
}

output "dlq_arn" {
  description = "ARN of the schedule's DLQ (undelivered events, failed async planner invocations)."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "URL of the schedule's DLQ."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_name" {
  description = "Name of the schedule's DLQ."
  value       = aws_sqs_queue.dlq.name
}

output "reconcile_rule_name" {
  description = "Name of the EventBridge rule that invokes the reconcile."
  value       = aws_cloudwatch_event_rule.reconcile.name
}

output "reconcile_schedule_expression" {
  description = "How often the reconcile runs."
  value       = aws_cloudwatch_event_rule.reconcile.schedule_expression
}
