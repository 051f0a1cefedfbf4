output "bucket" {
  description = "The mirror bucket."
  value       = module.bottlesync.bucket
}

output "mirror_prefix" {
  description = "Key prefix of the mirror."
  value       = module.bottlesync.mirror_prefix
}

output "lambda_queue_url" {
  description = "The Lambda queue."
  value       = module.bottlesync.lambda_queue_url
}

output "ecs_queue_url" {
  description = "The ECS queue."
  value       = module.bottlesync.ecs_queue_url
}

output "dlq_url" {
  description = "The DLQ."
  value       = module.bottlesync.dlq_url
}

output "ledger_table" {
  description = "The ledger table."
  value       = module.bottlesync.ledger_table
}

output "planner_environment" {
  description = "The planner Lambda's environment."
  value       = module.bottlesync.planner_environment
}

output "worker_environment" {
  description = "The worker Lambda's environment."
  value       = module.bottlesync.worker_environment
}

output "ecs_task_environment" {
  description = "The ECS worker task's environment."
  value       = module.bottlesync.ecs_task_environment
}

output "ecs_command" {
  description = "The ECS worker container's command."
  value       = module.bottlesync.ecs_command
}

output "ecs_cluster_name" {
  description = "The ECS cluster."
  value       = module.bottlesync.ecs_cluster_name
}

output "ecs_service_name" {
  description = "The ECS worker service."
  value       = module.bottlesync.ecs_service_name
}

output "reconcile_rule_name" {
  description = "The EventBridge rule that invokes the planner's reconcile (the end-to-end check looks for it)."
  value       = module.bottlesync.reconcile_rule_name
}

output "iam_role_names" {
  description = "The module's role names by use (planner, worker, ecs-task, ecs-execution) and the operators' role (operator)."
  value       = merge(module.bottlesync.iam_role_names, { operator = aws_iam_role.operator.name })
}
