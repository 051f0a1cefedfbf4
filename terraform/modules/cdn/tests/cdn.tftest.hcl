# The cdn module's own logic, with a mock provider (no AWS, no moto).

mock_provider "aws" {
  mock_resource "aws_cloudfront_distribution" {
    defaults = {
      arn         = "arn:aws:cloudfront::123456789012:distribution/E2MIRRORTEST"
      domain_name = "d1mirror.cloudfront.net"
    }
  }
}

variables {
  name_prefix                 = "bottlesync-test"
  bucket_id                   = "mirror-test"
  bucket_arn                  = "arn:aws:s3:::mirror-test"
  bucket_regional_domain_name = "mirror-test.s3.us-east-1.amazonaws.com"
  mirror_prefix               = "homebrew"
}

run "serves_bottles_and_api_over_https_through_oac" {
  command = apply

  assert {
    condition = (
      aws_cloudfront_origin_access_control.mirror.signing_behavior == "always" &&
      aws_cloudfront_origin_access_control.mirror.signing_protocol == "sigv4" &&
      aws_cloudfront_origin_access_control.mirror.origin_access_control_origin_type == "s3"
    )
    error_message = "an S3 origin access control that always signs with sigv4"
  }
  assert {
    condition = (
      one(aws_cloudfront_distribution.mirror.origin).origin_path == "/homebrew" &&
      one(aws_cloudfront_distribution.mirror.origin).domain_name == "mirror-test.s3.us-east-1.amazonaws.com" &&
      one(aws_cloudfront_distribution.mirror.origin).origin_access_control_id == aws_cloudfront_origin_access_control.mirror.id
    )
    error_message = "one origin: the bucket through the OAC, below the mirror prefix"
  }
  assert {
    condition     = [for b in aws_cloudfront_distribution.mirror.ordered_cache_behavior : b.path_pattern] == ["bottles/*/manifests/*", "bottles/*", "api/*"]
    error_message = "ordered behaviours: manifests, then bottles/*, then api/*"
  }
  assert {
    condition = alltrue([for b in concat(aws_cloudfront_distribution.mirror.ordered_cache_behavior, aws_cloudfront_distribution.mirror.default_cache_behavior) :
      b.viewer_protocol_policy == "https-only" && toset(b.allowed_methods) == toset(["GET", "HEAD"]) && toset(b.cached_methods) == toset(["GET", "HEAD"])
    ])
    error_message = "every behaviour: HTTPS only, GET and HEAD only"
  }
  assert {
    condition     = one([for b in aws_cloudfront_distribution.mirror.ordered_cache_behavior : b.compress == false && b.cache_policy_id == aws_cloudfront_cache_policy.bottles.id if b.path_pattern == "bottles/*"])
    error_message = "bottles: never compressed, the long-TTL policy"
  }
  assert {
    condition     = one([for b in aws_cloudfront_distribution.mirror.ordered_cache_behavior : b.compress == true && b.cache_policy_id == aws_cloudfront_cache_policy.api.id if b.path_pattern == "api/*"])
    error_message = "api: compressed, the short-TTL policy"
  }
  assert {
    condition     = one(aws_cloudfront_distribution.mirror.default_cache_behavior).compress == false
    error_message = "the default behaviour compresses nothing"
  }
  assert {
    condition = alltrue([for b in concat(aws_cloudfront_distribution.mirror.ordered_cache_behavior, aws_cloudfront_distribution.mirror.default_cache_behavior) :
      (b.origin_request_policy_id == null || b.origin_request_policy_id == "") && length(b.forwarded_values) == 0
    ])
    error_message = "no origin request policy and no legacy forwarded_values: only the cache policy decides what reaches S3"
  }
  assert {
    condition = alltrue([for p in [aws_cloudfront_cache_policy.bottles, aws_cloudfront_cache_policy.api] :
      one(one(one(p.parameters_in_cache_key_and_forwarded_to_origin).headers_config).headers[*].items) == null ||
      !contains(flatten(one(one(p.parameters_in_cache_key_and_forwarded_to_origin).headers_config).headers[*].items), "Authorization")
      ]) && alltrue([for p in [aws_cloudfront_cache_policy.bottles, aws_cloudfront_cache_policy.api] :
      one(one(p.parameters_in_cache_key_and_forwarded_to_origin).headers_config).header_behavior == "none" &&
      one(one(p.parameters_in_cache_key_and_forwarded_to_origin).cookies_config).cookie_behavior == "none" &&
      one(one(p.parameters_in_cache_key_and_forwarded_to_origin).query_strings_config).query_string_behavior == "none"
    ])
    error_message = "no viewer header (Authorization included), cookie or query string is forwarded to S3"
  }
  assert {
    condition = (
      aws_cloudfront_cache_policy.bottles.default_ttl == 31536000 && aws_cloudfront_cache_policy.bottles.max_ttl == 31536000 &&
      !one(aws_cloudfront_cache_policy.bottles.parameters_in_cache_key_and_forwarded_to_origin).enable_accept_encoding_gzip &&
      !one(aws_cloudfront_cache_policy.bottles.parameters_in_cache_key_and_forwarded_to_origin).enable_accept_encoding_brotli
    )
    error_message = "bottles are cached a year, with no Accept-Encoding (never recompressed)"
  }
  assert {
    condition     = aws_cloudfront_cache_policy.api.default_ttl == 300 && aws_cloudfront_cache_policy.api.max_ttl == 3600 && aws_cloudfront_cache_policy.api.min_ttl == 0
    error_message = "API files are cached 5 minutes unless the object says otherwise, an hour at most"
  }
  assert {
    condition = (
      one(aws_cloudfront_distribution.mirror.viewer_certificate).cloudfront_default_certificate &&
      length(aws_cloudfront_distribution.mirror.aliases) == 0 &&
      aws_cloudfront_distribution.mirror.price_class == "PriceClass_100" &&
      length(aws_cloudfront_distribution.mirror.logging_config) == 0
    )
    error_message = "defaults: the *.cloudfront.net certificate, no aliases, PriceClass_100, no logs"
  }
  assert {
    condition     = output.homebrew_client_env == "HOMEBREW_API_DOMAIN=https://d1mirror.cloudfront.net/api\nHOMEBREW_BOTTLE_DOMAIN=https://d1mirror.cloudfront.net/bottles\nHOMEBREW_NO_AUTO_UPDATE=1\nHOMEBREW_FORCE_API_AUTO_UPDATE=1"
    error_message = "the client lines name the cloudfront.net domain without the prefix"
  }
}

run "bucket_policy_grants_only_bottles_and_api_to_this_distribution" {
  command = apply

  assert {
    condition     = length(data.aws_iam_policy_document.bucket.statement) == 1
    error_message = "one statement"
  }
  assert {
    condition = (
      toset(one(data.aws_iam_policy_document.bucket.statement).actions) == toset(["s3:GetObject"]) &&
      toset(one(data.aws_iam_policy_document.bucket.statement).resources) == toset([
        "arn:aws:s3:::mirror-test/homebrew/bottles/*", "arn:aws:s3:::mirror-test/homebrew/api/*",
      ])
    )
    error_message = "s3:GetObject on <prefix>/bottles/* and <prefix>/api/* only (no ListBucket, nothing else of the bucket)"
  }
  assert {
    condition = (
      one(one(data.aws_iam_policy_document.bucket.statement).principals).type == "Service" &&
      toset(one(one(data.aws_iam_policy_document.bucket.statement).principals).identifiers) == toset(["cloudfront.amazonaws.com"]) &&
      one(one(data.aws_iam_policy_document.bucket.statement).condition).variable == "AWS:SourceArn" &&
      toset(one(one(data.aws_iam_policy_document.bucket.statement).condition).values) == toset(["arn:aws:cloudfront::123456789012:distribution/E2MIRRORTEST"])
    )
    error_message = "granted to CloudFront for this distribution only (AWS:SourceArn)"
  }
}

run "no_prefix_serves_the_bucket_root" {
  command = apply

  variables {
    mirror_prefix = ""
  }

  assert {
    condition     = one(aws_cloudfront_distribution.mirror.origin).origin_path == ""
    error_message = "no origin path without a prefix"
  }
  assert {
    condition = toset(one(data.aws_iam_policy_document.bucket.statement).resources) == toset([
      "arn:aws:s3:::mirror-test/bottles/*", "arn:aws:s3:::mirror-test/api/*",
    ])
    error_message = "the grant covers bottles/* and api/* at the bucket root"
  }
}

run "aliases_use_the_certificate_and_the_first_alias" {
  command = apply

  variables {
    aliases                = ["brew.example.com", "brew-mirror.example.com"]
    acm_certificate_arn    = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
    price_class            = "PriceClass_All"
    log_bucket_domain_name = "my-logs.s3.amazonaws.com"
  }

  assert {
    condition = (
      one(aws_cloudfront_distribution.mirror.viewer_certificate).acm_certificate_arn == "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab" &&
      one(aws_cloudfront_distribution.mirror.viewer_certificate).ssl_support_method == "sni-only" &&
      one(aws_cloudfront_distribution.mirror.viewer_certificate).minimum_protocol_version == "TLSv1.2_2021" &&
      !one(aws_cloudfront_distribution.mirror.viewer_certificate).cloudfront_default_certificate
    )
    error_message = "the ACM certificate, SNI, TLS 1.2 at least"
  }
  assert {
    condition     = toset(aws_cloudfront_distribution.mirror.aliases) == toset(["brew.example.com", "brew-mirror.example.com"]) && aws_cloudfront_distribution.mirror.price_class == "PriceClass_All"
    error_message = "aliases and price class reach the distribution"
  }
  assert {
    condition     = one(aws_cloudfront_distribution.mirror.logging_config).bucket == "my-logs.s3.amazonaws.com"
    error_message = "access logs to the given bucket"
  }
  assert {
    condition     = output.homebrew_client_env == "HOMEBREW_API_DOMAIN=https://brew.example.com/api\nHOMEBREW_BOTTLE_DOMAIN=https://brew.example.com/bottles\nHOMEBREW_NO_AUTO_UPDATE=1\nHOMEBREW_FORCE_API_AUTO_UPDATE=1"
    error_message = "clients use the first alias"
  }
}

run "rejects_aliases_without_a_certificate" {
  command = plan
  variables {
    aliases = ["brew.example.com"]
  }
  expect_failures = [var.aliases]
}

run "rejects_a_certificate_without_aliases" {
  command = plan
  variables {
    acm_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
  }
  expect_failures = [var.aliases]
}

run "rejects_a_certificate_outside_us_east_1" {
  command = plan
  variables {
    aliases             = ["brew.example.com"]
    acm_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
  }
  expect_failures = [var.acm_certificate_arn]
}

run "rejects_an_unknown_price_class" {
  command = plan
  variables {
    price_class = "PriceClass_50"
  }
  expect_failures = [var.price_class]
}

run "rejects_a_prefix_with_slashes_at_the_ends" {
  command = plan
  variables {
    mirror_prefix = "/homebrew/"
  }
  expect_failures = [var.mirror_prefix]
}
