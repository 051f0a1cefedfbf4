output "bucket_id" {
  description = "Name of the mirror bucket (BOTTLESYNC_BUCKET)."
  value       = aws_s3_bucket.mirror.bucket
}

output "bucket_arn" {
  description = "ARN of the mirror bucket."
  value       = aws_s3_bucket.mirror.arn
}

output "log_bucket_id" {
  description = "Name of the access-log bucket."
  value       = aws_s3_bucket.logs.bucket
}

output "log_bucket_arn" {
  description = "ARN of the access-log bucket."
  value       = aws_s3_bucket.logs.arn
}

output "lifecycle_rule_ids" {
  description = "Ids of the mirror bucket's lifecycle rules."
  value       = [for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.id]
}
