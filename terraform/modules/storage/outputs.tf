output "bucket_id" {
  description = "Name of the mirror bucket (BOTTLESYNC_BUCKET)."
  value       = aws_s3_bucket.mirror.bucket
}

output "bucket_arn" {
  description = "ARN of the mirror bucket."
  value       = aws_s3_bucket.mirror.arn
}

output "bucket_regional_domain_name" {
  description = "Regional domain name of the mirror bucket (a CloudFront origin)."
  value       = aws_s3_bucket.mirror.bucket_regional_domain_name
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

output "archive_days" {
  description = "Days after which the dated folders' objects (tagged bottlesync-archive=dated) expire; null when they are kept forever (archive_days = 0)."
  value       = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.expiration[0].days if r.id == "expire-dated-archive"])
}
