# CloudFront in front of the mirror bucket: brew clients download bottles and
# API files from edges, over HTTPS, while the bucket stays private (an origin
# access control signs CloudFront's requests; the storage module's bucket
# policy merges bucket_policy_json, which grants this distribution alone
# s3:GetObject on <prefix>/bottles/* and <prefix>/api/*).

locals {
  origin_id = "mirror"
  # The mirror lives under the prefix: clients see <domain>/bottles/..., <domain>/api/....
  origin_path = var.mirror_prefix == "" ? "" : "/${var.mirror_prefix}"
  key_prefix  = var.mirror_prefix == "" ? "" : "${var.mirror_prefix}/"
  # What clients put in HOMEBREW_*: the first alias, else the *.cloudfront.net name.
  client_domain = length(var.aliases) > 0 ? var.aliases[0] : aws_cloudfront_distribution.mirror.domain_name

  # What each path gets, as deployed (output cache_behaviors; "*": the default behaviour).
  cache_policies = {
    (aws_cloudfront_cache_policy.bottles.id) = aws_cloudfront_cache_policy.bottles
    (aws_cloudfront_cache_policy.api.id)     = aws_cloudfront_cache_policy.api
  }
  behaviors = merge(
    { for b in aws_cloudfront_distribution.mirror.ordered_cache_behavior : b.path_pattern => b },
    { for b in aws_cloudfront_distribution.mirror.default_cache_behavior : "*" => b },
  )
}

resource "aws_cloudfront_origin_access_control" "mirror" {
  name                              = "${var.name_prefix}-mirror"
  description                       = "CloudFront reads the bottlesync mirror bucket ${var.bucket_id}"
  origin_access_control_origin_type = "s3"
  # Always: CloudFront signs every origin request itself, replacing any
  # Authorization header a viewer sent (brew sends "Bearer QQ==" with manifest requests).
  signing_behavior = "always"
  signing_protocol = "sigv4"
}

# Bottles: immutable (the file name carries version and rebuild), kept a year.
# The cache key has no header, cookie or query string, so nothing of the
# viewer's request (Authorization included) reaches S3. No Accept-Encoding
# either: bottles are application/gzip and must reach brew byte for byte.
resource "aws_cloudfront_cache_policy" "bottles" {
  name        = "${var.name_prefix}-bottles"
  comment     = "bottlesync bottles: immutable, no viewer headers, never compressed"
  min_ttl     = 0
  default_ttl = var.bottle_ttl_seconds
  max_ttl     = var.bottle_ttl_seconds

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = false
    enable_accept_encoding_brotli = false
    headers_config {
      header_behavior = "none"
    }
    cookies_config {
      cookie_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# API files and image manifests: replaced by every run, kept minutes (the
# object's own Cache-Control wins up to api_max_ttl_seconds). Compressed
# copies for viewers that ask (brew's curl uses --compressed for the API).
resource "aws_cloudfront_cache_policy" "api" {
  name        = "${var.name_prefix}-api"
  comment     = "bottlesync API files and manifests: short TTL, no viewer headers, compressible"
  min_ttl     = 0
  default_ttl = var.api_default_ttl_seconds
  max_ttl     = var.api_max_ttl_seconds

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true
    headers_config {
      header_behavior = "none"
    }
    cookies_config {
      cookie_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "mirror" {
  name    = "${var.name_prefix}-mirror"
  comment = "bottlesync mirror: HSTS and nosniff (a bottle is never sniffed as text)"

  security_headers_config {
    content_type_options {
      override = true
    }
    # includeSubDomains and preload cost nothing here: the mirror's host
    # serves HTTPS only, and nothing is preloaded unless submitted to the list.
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    referrer_policy {
      referrer_policy = "no-referrer"
      override        = true
    }
  }
}

resource "aws_cloudfront_distribution" "mirror" {
  #checkov:skip=CKV_AWS_68:WAF is optional (web_acl_id): the distribution serves public, read-only files with GET and HEAD only, and a web ACL costs more than a small mirror's traffic.
  #checkov:skip=CKV2_AWS_47:WAF is optional (web_acl_id); no application behind the distribution runs Log4j (the origin is S3).
  #checkov:skip=CKV_AWS_86:Access logs are optional (log_bucket_domain_name): CloudFront standard logs need a bucket with ACLs, which the storage module's buckets disable (BucketOwnerEnforced).
  #checkov:skip=CKV_AWS_174:With the default *.cloudfront.net certificate CloudFront only accepts minimum_protocol_version TLSv1; with acm_certificate_arn the module sets TLSv1.2_2021.
  #checkov:skip=CKV2_AWS_42:A custom certificate is optional (aliases + acm_certificate_arn); the *.cloudfront.net name has CloudFront's own certificate.
  #checkov:skip=CKV_AWS_310:One origin: the mirror bucket is the only copy; a failover origin would be a second mirror.
  #checkov:skip=CKV_AWS_305:No default root object: "/" is not part of the mirror (brew only requests bottles/ and api/ paths) and the bucket policy denies it.
  #checkov:skip=CKV_AWS_374:No geo restriction: a mirror's clients can be anywhere; restrict with a web ACL (web_acl_id) if needed.
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  # CloudFront limits comments to 128 characters (a bucket name alone may be 63).
  comment     = substr("${var.name_prefix}: Homebrew mirror s3://${var.bucket_id}/${var.mirror_prefix}", 0, 128)
  price_class = var.price_class
  aliases     = var.aliases
  web_acl_id  = var.web_acl_id
  tags        = var.tags

  origin {
    origin_id                = local.origin_id
    domain_name              = var.bucket_regional_domain_name
    origin_path              = local.origin_path
    origin_access_control_id = aws_cloudfront_origin_access_control.mirror.id
  }

  # Image manifests live under bottles/ but change when upstream pushes new
  # bottles of a version: API caching. (An image name may hold a '/': the
  # pattern's '*' matches it.)
  ordered_cache_behavior {
    path_pattern               = "bottles/*/manifests/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.api.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.mirror.id
  }

  ordered_cache_behavior {
    path_pattern               = "bottles/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.bottles.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.mirror.id
  }

  ordered_cache_behavior {
    path_pattern               = "api/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.api.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.mirror.id
  }

  # Everything else reaches the same origin, where the bucket policy grants
  # CloudFront nothing outside <prefix>/bottles/* and <prefix>/api/*: S3
  # answers 403 (bottles_hash.json, .bottlesync/, listings and every other
  # key stay private). No ListBucket either, so a missing bottle is a 403 too.
  default_cache_behavior {
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.api.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.mirror.id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
      locations        = []
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = var.acm_certificate_arn == null
    acm_certificate_arn            = var.acm_certificate_arn
    ssl_support_method             = var.acm_certificate_arn == null ? null : "sni-only"
    minimum_protocol_version       = var.acm_certificate_arn == null ? "TLSv1" : "TLSv1.2_2021"
  }

  dynamic "logging_config" {
    for_each = var.log_bucket_domain_name == null ? [] : [var.log_bucket_domain_name]
    content {
      bucket          = logging_config.value
      prefix          = var.log_prefix
      include_cookies = false
    }
  }
}

# Merged into the mirror bucket's policy by the storage module (its
# policy_documents input): one aws_s3_bucket_policy owns the bucket's policy.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "CloudFrontReadsBottlesAndApi"
    effect  = "Allow"
    actions = ["s3:GetObject"]
    resources = [
      "${var.bucket_arn}/${local.key_prefix}bottles/*",
      "${var.bucket_arn}/${local.key_prefix}api/*",
    ]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.mirror.arn]
    }
  }
}
