output "lambda_queue_url" {
  description = "URL of the Lambda queue (BOTTLESYNC_QUEUE_URL)."
  value       = aws_sqs_queue.lambda.url
}

output "lambda_queue_arn" {
  description = "ARN of the Lambda queue."
  value       = aws_sqs_queue.lambda.arn
}

output "lambda_queue_name" {
  description = "Name of the Lambda queue."
  value       = aws_sqs_queue.lambda.name
}

output "ecs_queue_url" {
  description = "URL of the ECS queue (BOTTLESYNC_LARGE_QUEUE_URL)."
  value       = aws_sqs_queue.ecs.url
}

output "ecs_queue_arn" {
  description = "ARN of the ECS queue."
  value       = aws_sqs_queue.ecs.arn
}

output "ecs_queue_name" {
  description = "Name of the ECS queue."
  value       = aws_sqs_queue.ecs.name
}

output "dlq_url" {
  description = "URL of the dead-letter queue (BOTTLESYNC_DLQ_URL)."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "lambda_visibility_timeout_seconds" {
  description = "Visibility timeout of the Lambda queue (6x the worker Lambda's timeout)."
  value       = aws_sqs_queue.lambda.visibility_timeout_seconds
}

output "ecs_visibility_timeout_seconds" {
  description = "Visibility timeout of the ECS queue; the ECS worker's BOTTLESYNC_VISIBILITY_TIMEOUT must equal it."
  value       = aws_sqs_queue.ecs.visibility_timeout_seconds
}

output "max_receive_count" {
  description = "Receives before a message moves to the DLQ."
  value       = var.max_receive_count
}
