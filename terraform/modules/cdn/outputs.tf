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
  description = "The four lines brew clients set: HOMEBREW_API_DOMAIN, HOMEBREW_BOTTLE_DOMAIN, HOMEBREW_NO_AUTO_UPDATE=1 (no git fetch of brew itself) and HOMEBREW_FORCE_API_AUTO_UPDATE=1 (without it brew keeps its first API file forever)."
  value       = "HOMEBREW_API_DOMAIN=https://${local.client_domain}/api\nHOMEBREW_BOTTLE_DOMAIN=https://${local.client_domain}/bottles\nHOMEBREW_NO_AUTO_UPDATE=1\nHOMEBREW_FORCE_API_AUTO_UPDATE=1"
}

output "origin_access_control" {
  description = "The origin access control that signs CloudFront's requests to the bucket: id, signing_behavior (always: a viewer's Authorization header is replaced), signing_protocol."
  value = {
    id               = aws_cloudfront_origin_access_control.mirror.id
    signing_behavior = aws_cloudfront_origin_access_control.mirror.signing_behavior
    signing_protocol = aws_cloudfront_origin_access_control.mirror.signing_protocol
  }
}

output "cache_behaviors" {
  description = "What each path pattern gets (\"*\": the default behaviour, which the bucket policy answers with 403): viewer protocol, methods, compression, TTLs, and which viewer headers, cookies and query strings reach S3 (none)."
  value = { for pattern, b in local.behaviors : pattern => {
    viewer_protocol_policy = b.viewer_protocol_policy
    allowed_methods        = sort(b.allowed_methods)
    compress               = b.compress
    default_ttl            = local.cache_policies[b.cache_policy_id].default_ttl
    max_ttl                = local.cache_policies[b.cache_policy_id].max_ttl
    forwarded_headers      = one(one(local.cache_policies[b.cache_policy_id].parameters_in_cache_key_and_forwarded_to_origin).headers_config).header_behavior
    forwarded_cookies      = one(one(local.cache_policies[b.cache_policy_id].parameters_in_cache_key_and_forwarded_to_origin).cookies_config).cookie_behavior
    forwarded_query        = one(one(local.cache_policies[b.cache_policy_id].parameters_in_cache_key_and_forwarded_to_origin).query_strings_config).query_string_behavior
    origin_request_policy  = b.origin_request_policy_id == "" ? null : b.origin_request_policy_id
  } }
}

output "bucket_policy_json" {
  description = "Policy statement granting this distribution s3:GetObject on <prefix>/bottles/* and <prefix>/api/*: pass it to the storage module's policy_documents (one bucket policy per bucket)."
  value       = data.aws_iam_policy_document.bucket.json
}
