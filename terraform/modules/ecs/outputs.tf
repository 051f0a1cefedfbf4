output "cluster_name" {
  description = "Name of the ECS cluster (BOTTLESYNC_ECS_CLUSTER)."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "service_name" {
  description = "Name of the worker service (BOTTLESYNC_ECS_SERVICE)."
  value       = aws_ecs_service.worker.name
}

output "service_arn" {
  description = "ARN of the worker service."
  value       = aws_ecs_service.worker.id
}

output "task_definition_arn" {
  description = "ARN of the worker task definition."
  value       = aws_ecs_task_definition.worker.arn
}

output "log_group_name" {
  description = "Log group of the worker tasks."
  value       = aws_cloudwatch_log_group.worker.name
}

output "log_group_arn" {
  description = "ARN of the worker tasks' log group."
  value       = aws_cloudwatch_log_group.worker.arn
}

output "command" {
  description = "The worker container's command."
  value       = local.command
}

output "task_environment" {
  description = "The worker container's environment exactly as in the task definition."
  value       = local.environment
}

output "autoscaling_enabled" {
  description = "Whether queue-depth scaling was created."
  value       = var.enable_autoscaling
}
