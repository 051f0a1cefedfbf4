output "distribution_id" {
  description = "Id of the CloudFront distribution (for invalidations: aws cloudfront create-invalidation --distribution-id ...)."
  value       = aws_cloudfront_distribution.mirror.id
}

output "distribution_arn" {
  description = "ARN of the CloudFront distribution (the bucket policy's AWS:SourceArn)."
  value       = aws_cloudfront_distribution.mirror.arn
}

output "domain_name" {
  description = "The distribution's *.cloudfront.net name (the target of DNS records for aliases)."
  value       = aws_cloudfront_distribution.mirror.domain_name
}

output "hosted_zone_id" {
  description = "Route 53 zone id of CloudFront, for alias records that point at domain_name."
  value       = aws_cloudfront_distribution.mirror.hosted_zone_id
}

output "client_domain" {
  description = "The host clients use: the first alias, else domain_name."
  value       = local.client_domain
}

output "homebrew_client_env" {
  description = "The two lines brew clients set (add HOMEBREW_NO_AUTO_UPDATE=1): HOMEBREW_API_DOMAIN and HOMEBREW_BOTTLE_DOMAIN."
  value       = "HOMEBREW_API_DOMAIN=https://${local.client_domain}/api\nHOMEBREW_BOTTLE_DOMAIN=https://${local.client_domain}/bottles"
}

output "origin_access_control_id" {
  description = "Id of the origin access control that signs CloudFront's requests to the bucket."
  value       = aws_cloudfront_origin_access_control.mirror.id
}

output "bucket_policy_json" {
  description = "Policy statement granting this distribution s3:GetObject on <prefix>/bottles/* and <prefix>/api/*: pass it to the storage module's policy_documents (one bucket policy per bucket)."
  value       = data.aws_iam_policy_document.bucket.json
}
