# Each role ARN is available only once the role's policy is in place.

output "planner_role_arn" {
  description = "Role of the planner Lambda."
  value       = aws_iam_role.this["planner"].arn
  depends_on  = [aws_iam_role_policy.planner]
}

output "worker_role_arn" {
  description = "Role of the worker Lambda."
  value       = aws_iam_role.this["worker"].arn
  depends_on  = [aws_iam_role_policy.worker]
}

output "ecs_task_role_arn" {
  description = "Role of the ECS worker task."
  value       = aws_iam_role.this["ecs-task"].arn
  depends_on  = [aws_iam_role_policy.ecs_task]
}

output "ecs_execution_role_arn" {
  description = "Role ECS uses to start the worker task."
  value       = aws_iam_role.this["ecs-execution"].arn
  depends_on  = [aws_iam_role_policy.ecs_execution]
}

output "operator_policy_arn" {
  description = "Managed policy for the operators' own role or group: `bottlesync status`, `dlq list`, `dlq replay`, `plan` and `reconcile` from a shell."
  value       = aws_iam_policy.operator.arn
}

output "role_names" {
  description = "Role names by use (planner, worker, ecs-task, ecs-execution)."
  value       = { for k, r in aws_iam_role.this : k => r.name }
}

output "policies" {
  description = "The inline policy of each role and the operator policy, as objects (what `terraform test` checks)."
  value       = local.policies
}
