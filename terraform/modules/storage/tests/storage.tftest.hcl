# The storage module's own logic, with a mock provider (no AWS, no moto).

mock_provider "aws" {}

variables {
  bucket_name   = "mirror-test"
  mirror_prefix = "homebrew"
}

run "defaults_never_expire_current_bottles" {
  command = plan

  assert {
    condition     = !contains([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.id], "expire-current-bottles")
    error_message = "current bottles must not expire by default"
  }
  assert {
    condition = toset([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.id]) == toset([
      "abort-incomplete-multipart-uploads", "expire-noncurrent-versions", "transition-old-bottles", "expire-dated-archive",
    ])
    error_message = "default lifecycle rules: abort multipart, expire noncurrent versions, transitions, the dated archive"
  }
  assert {
    condition = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.abort_incomplete_multipart_upload[0].days_after_initiation
    if r.id == "abort-incomplete-multipart-uploads"]) == 1
    error_message = "incomplete multipart uploads are aborted after a day"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.filter[0].prefix if r.id == "transition-old-bottles"]) == "homebrew/"
    error_message = "transitions apply below the mirror prefix only"
  }
  assert {
    # Current bottles are never moved to IA or Glacier by age: a mirror's
    # old-but-current bottles are its most read, and every CDN miss would
    # pay a retrieval. Intelligent-Tiering prices them by their last read.
    condition     = [for t in one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.transition if r.id == "transition-old-bottles"]) : "${t.days}:${t.storage_class}"] == ["0:INTELLIGENT_TIERING"]
    error_message = "by default bottles go to Intelligent-Tiering at once, never to IA or Glacier by age"
  }
  assert {
    condition     = aws_s3_bucket.mirror.force_destroy == false
    error_message = "a mirror bucket is not force-destroyed by default"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.mirror.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "SSE-S3 without a KMS key"
  }
  assert {
    condition     = one(aws_s3_bucket_versioning.mirror.versioning_configuration).status == "Enabled"
    error_message = "versioning is on"
  }
  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.mirror.block_public_acls,
      aws_s3_bucket_public_access_block.mirror.block_public_policy,
      aws_s3_bucket_public_access_block.mirror.ignore_public_acls,
      aws_s3_bucket_public_access_block.mirror.restrict_public_buckets,
    ])
    error_message = "all public access is blocked"
  }
  assert {
    condition     = length(aws_s3_bucket_policy.mirror) == 1 && aws_s3_bucket.logs.bucket == "mirror-test-logs"
    error_message = "TLS-only policy on, access logs to <bucket>-logs"
  }
}

run "kms_key_switches_to_sse_kms" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.mirror.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "SSE-KMS with a key"
  }
}

run "expiring_current_bottles_is_opt_in" {
  command = plan

  variables {
    expire_current_days = 730
    transitions         = []
    enforce_tls         = false
  }

  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.expiration[0].days if r.id == "expire-current-bottles"]) == 730
    error_message = "expire_current_days adds an expiration rule"
  }
  assert {
    condition     = !contains([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.id], "transition-old-bottles")
    error_message = "no transitions rule without transitions"
  }
  assert {
    condition     = length(aws_s3_bucket_policy.mirror) == 0
    error_message = "enforce_tls = false drops the TLS-only bucket policy"
  }
}

run "policy_documents_join_the_one_bucket_policy" {
  command = plan

  variables {
    # Without the TLS statement (moto), an extra document alone still makes a policy.
    enforce_tls      = false
    policy_documents = [jsonencode({ Version = "2012-10-17", Statement = [{ Sid = "CloudFrontReadsBottlesAndApi", Effect = "Allow", Action = "s3:GetObject", Principal = { Service = "cloudfront.amazonaws.com" }, Resource = "arn:aws:s3:::mirror-test/homebrew/bottles/*" }] })]
  }

  assert {
    condition     = length(aws_s3_bucket_policy.mirror) == 1
    error_message = "policy_documents alone give the bucket its policy"
  }
  assert {
    condition     = length(data.aws_iam_policy_document.mirror[0].source_policy_documents) == 1 && length(data.aws_iam_policy_document.mirror[0].statement) == 0
    error_message = "the extra document is merged; no TLS statement without enforce_tls"
  }
}

run "policy_documents_merge_with_the_tls_statement" {
  command = plan

  variables {
    policy_documents = [jsonencode({ Version = "2012-10-17", Statement = [{ Sid = "Extra", Effect = "Allow", Action = "s3:GetObject", Principal = { Service = "cloudfront.amazonaws.com" }, Resource = "arn:aws:s3:::mirror-test/homebrew/api/*" }] })]
  }

  assert {
    condition = (
      length(aws_s3_bucket_policy.mirror) == 1 &&
      length(data.aws_iam_policy_document.mirror[0].source_policy_documents) == 1 &&
      [for st in data.aws_iam_policy_document.mirror[0].statement : st.sid] == ["DenyInsecureTransport"]
    )
    error_message = "one bucket policy: the TLS statement plus the extra document"
  }
}

run "rejects_expire_current_days_zero" {
  command = plan
  variables {
    expire_current_days = 0
  }
  expect_failures = [var.expire_current_days]
}

run "rejects_standard_ia_before_30_days" {
  command = plan
  variables {
    transitions = [{ days = 7, storage_class = "STANDARD_IA" }]
  }
  expect_failures = [var.transitions]
}

run "rejects_classes_brew_cannot_download_from" {
  command = plan
  variables {
    transitions = [{ days = 90, storage_class = "DEEP_ARCHIVE" }]
  }
  expect_failures = [var.transitions]
}

run "rejects_descending_transitions" {
  command = plan
  variables {
    transitions = [{ days = 180, storage_class = "GLACIER_IR" }, { days = 30, storage_class = "STANDARD_IA" }]
  }
  expect_failures = [var.transitions]
}

run "rejects_bad_bucket_name" {
  command = plan
  variables {
    bucket_name = "Not_A_Bucket"
  }
  expect_failures = [var.bucket_name]
}

run "rejects_prefix_with_slashes_at_the_ends" {
  command = plan
  variables {
    mirror_prefix = "/homebrew/"
  }
  expect_failures = [var.mirror_prefix]
}

# terraform-aws-modules users expect `tags` on every resource that takes them.
run "tags_reach_the_resources" {
  command = plan
  variables {
    tags = { CostCenter = "platform" }
  }
  assert {
    condition     = aws_s3_bucket.mirror.tags == var.tags
    error_message = "the module's resources carry var.tags"
  }
}

# The dated folders (<prefix>/<YYYY-MM-DD>/) are an archive view: expired
# after archive_days, matched by the tag bottlesync writes on exactly the
# dated objects. S3 applies a rule whose filter is a tag to every object
# that has the tag; the objects below are what a mirror holds, with the tags
# bottlesync gives them.
run "the_dated_archive_expires_after_30_days_by_default_and_nothing_else_does" {
  command = plan

  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.expiration[0].days if r.id == "expire-dated-archive"]) == 30
    error_message = "the dated archive expires after 30 days by default"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.noncurrent_version_expiration[0].noncurrent_days if r.id == "expire-dated-archive"]) == 1
    error_message = "an expired archive object (a noncurrent version: the bucket is versioned) is deleted a day later"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : [for t in r.filter[0].tag : "${t.key}=${t.value}"] if r.id == "expire-dated-archive"]) == ["bottlesync-archive=dated"]
    error_message = "the archive rule's filter is the archive tag"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : length(r.filter[0].and) if r.id == "expire-dated-archive"]) == 0
    error_message = "the tag alone: no and block (it would carry an object size moto drops, and match nothing more exactly)"
  }
  assert {
    condition = [
      for key, tags in {
        "homebrew/2026-11-29/wget-1.25.0.arm64_tahoe.bottle.tar.gz"   = { "bottlesync-archive" = "dated" }
        "homebrew/bottles/wget-1.25.0.arm64_tahoe.bottle.tar.gz"      = {}
        "homebrew/bottles/wget/manifests/1.25.0"                      = {}
        "homebrew/api/internal/packages.arm64_tahoe.jws.json"         = {}
        "homebrew/api/formula.jws.json"                               = {}
        "homebrew/bottles_hash.json"                                  = {}
        "homebrew/.bottlesync/published.json"                         = {}
        "homebrew/2026-11-29/bottles_hash.json-would-be-a-dated-name" = {}
      } : key
      if anytrue([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : alltrue([for t in r.filter[0].tag : lookup(tags, t.key, null) == t.value]) if r.id == "expire-dated-archive"])
    ] == ["homebrew/2026-11-29/wget-1.25.0.arm64_tahoe.bottle.tar.gz"]
    error_message = "the archive rule expires the dated bottles and nothing else: not bottles/, api/, bottles_hash.json or the bookkeeping"
  }
}

run "archive_days_sets_the_archive_rule_days" {
  command = plan

  variables {
    archive_days = 7
  }

  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.expiration[0].days if r.id == "expire-dated-archive"]) == 7
    error_message = "archive_days = 7 expires the dated archive after 7 days"
  }
}

run "archive_days_zero_keeps_the_dated_folders_forever" {
  command = plan

  variables {
    archive_days = 0
  }

  assert {
    condition     = !contains([for r in aws_s3_bucket_lifecycle_configuration.mirror.rule : r.id], "expire-dated-archive")
    error_message = "archive_days = 0: no archive rule"
  }
}

run "rejects_negative_archive_days" {
  command = plan
  variables {
    archive_days = -1
  }
  expect_failures = [var.archive_days]
}

run "rejects_fractional_archive_days" {
  command = plan
  variables {
    archive_days = 1.5
  }
  expect_failures = [var.archive_days]
}
