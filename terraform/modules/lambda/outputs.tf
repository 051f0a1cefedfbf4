output "planner_function_name" {
  description = "Name of the planner function."
  value       = aws_lambda_function.planner.function_name
}

output "planner_function_arn" {
  description = "ARN of the planner function."
  value       = aws_lambda_function.planner.arn
}

output "worker_function_name" {
  description = "Name of the worker function."
  value       = aws_lambda_function.worker.function_name
}

output "worker_function_arn" {
  description = "ARN of the worker function."
  value       = aws_lambda_function.worker.arn
}

output "log_group_names" {
  description = "Log group of each function, by role (planner, worker)."
  value       = { for k, g in aws_cloudwatch_log_group.function : k => g.name }
}

output "log_group_arns" {
  description = "Log group ARN of each function, by role (planner, worker)."
  value       = { for k, g in aws_cloudwatch_log_group.function : k => g.arn }
}

output "event_source_mapping_uuid" {
  description = "UUID of the worker's SQS event source mapping (null when disabled)."
  value       = one(aws_lambda_event_source_mapping.worker[*].uuid)
}

output "planner_environment" {
  description = "The planner's environment exactly as deployed (the BOTTLESYNC_* settings)."
  value       = aws_lambda_function.planner.environment[0].variables
}

output "worker_environment" {
  description = "The worker's environment exactly as deployed (the BOTTLESYNC_* settings)."
  value       = aws_lambda_function.worker.environment[0].variables
}
