# The mirror bucket and the bucket that receives its access logs.

data "aws_caller_identity" "current" {}

locals {
  log_bucket_name = coalesce(var.log_bucket_name, "${var.bucket_name}-logs")
  # Lifecycle rules that concern bottles apply below the mirror prefix only.
  mirror_key_prefix = var.mirror_prefix == "" ? "" : "${var.mirror_prefix}/"
  # The tag bottlesync puts on every object of a dated folder
  # (<prefix>/<YYYY-MM-DD>/<file>) and on nothing else (core's
  # layout::ARCHIVE_TAG): the archive rule's filter.
  archive_tag       = { key = "bottlesync-archive", value = "dated" }
  access_log_prefix = "s3-access/${var.bucket_name}/"
  sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
  # The number of documents is known at plan time even when their text is not.
  mirror_policy = var.enforce_tls || length(var.policy_documents) > 0
}

# ---------------------------------------------------------------- mirror ----

resource "aws_s3_bucket" "mirror" {
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles the storage bill of a mirror that can be rebuilt from Homebrew; add a replication rule outside this module if you need one.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: the ledger in DynamoDB, not S3 events, records what the mirror holds.
  #checkov:skip=CKV_AWS_145:SSE-S3 is the default (no KMS request costs on every bottle); pass kms_key_arn to encrypt with a customer-managed KMS key.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "mirror" {
  bucket = aws_s3_bucket.mirror.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "mirror" {
  bucket                  = aws_s3_bucket.mirror.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "mirror" {
  bucket = aws_s3_bucket.mirror.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "mirror" {
  bucket = aws_s3_bucket.mirror.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.sse_algorithm
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_logging" "mirror" {
  bucket        = aws_s3_bucket.mirror.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = local.access_log_prefix

  depends_on = [aws_s3_bucket_policy.logs]
}

# One policy for the bucket: the TLS-only statement and whatever other modules
# add through policy_documents (the cdn module's CloudFront read grant). A
# second aws_s3_bucket_policy for the same bucket would overwrite this one.
data "aws_iam_policy_document" "mirror" {
  count = local.mirror_policy ? 1 : 0

  source_policy_documents = var.policy_documents

  dynamic "statement" {
    for_each = var.enforce_tls ? [1] : []
    content {
      sid       = "DenyInsecureTransport"
      effect    = "Deny"
      actions   = ["s3:*"]
      resources = [aws_s3_bucket.mirror.arn, "${aws_s3_bucket.mirror.arn}/*"]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      condition {
        test     = "Bool"
        variable = "aws:SecureTransport"
        values   = ["false"]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "mirror" {
  count  = local.mirror_policy ? 1 : 0
  bucket = aws_s3_bucket.mirror.id
  policy = data.aws_iam_policy_document.mirror[0].json

  depends_on = [aws_s3_bucket_public_access_block.mirror]
}

resource "aws_s3_bucket_lifecycle_configuration" "mirror" {
  #checkov:skip=CKV_AWS_300:The static rule abort-incomplete-multipart-uploads below does this; checkov (3.3.30) drops static rules when a block also has dynamic ones. tests/storage.tftest.hcl checks the rule.
  bucket                                 = aws_s3_bucket.mirror.id
  transition_default_minimum_object_size = "all_storage_classes_128K"

  # A worker killed mid-upload cannot abort its own multipart upload.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  # bottles_hash.json is replaced on every run: keep old versions a while, not forever.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  # Old bottles to cheaper storage classes. Objects under 128 KiB (the hash
  # file, ledger bookkeeping) are never transitioned
  # (transition_default_minimum_object_size): S3 would charge them as 128 KiB.
  dynamic "rule" {
    for_each = length(var.transitions) > 0 ? [1] : []
    content {
      id     = "transition-old-bottles"
      status = "Enabled"
      filter {
        prefix = local.mirror_key_prefix
      }
      dynamic "transition" {
        for_each = var.transitions
        content {
          days          = transition.value.days
          storage_class = transition.value.storage_class
        }
      }
    }
  }

  # The dated folders are the archive view: each bottle is also at its flat
  # key bottles/<file> (a server-side copy made before bottles_hash.json
  # names it), so expiring them after archive_days stores every bottle once.
  # A lifecycle filter matches a key prefix, and no prefix matches exactly
  # <prefix>/<YYYY-MM-DD>/ (<prefix>/2 also matches anything else starting
  # with a 2): the filter is the tag bottlesync writes with exactly the
  # dated objects, never with bottles/, api/, bottles_hash.json or
  # .bottlesync/ (flat copies are made without the source's tags). The tag
  # alone, not with the mirror prefix in an and block: it already names
  # exactly the archive objects (of any bottlesync mirror in this bucket),
  # and an and block always carries an object size (0) that moto does not
  # keep, so examples/local could never apply it. In this versioned bucket
  # an expired object becomes a noncurrent version: it is deleted a day
  # later, not after noncurrent_version_expiration_days.
  dynamic "rule" {
    for_each = var.archive_days == 0 ? [] : [var.archive_days]
    content {
      id     = "expire-dated-archive"
      status = "Enabled"
      filter {
        tag {
          key   = local.archive_tag.key
          value = local.archive_tag.value
        }
      }
      expiration {
        days = rule.value
      }
      noncurrent_version_expiration {
        noncurrent_days = 1
      }
    }
  }

  # Off by default: expiring current bottles deletes what brew still installs.
  dynamic "rule" {
    for_each = var.expire_current_days == null ? [] : [var.expire_current_days]
    content {
      id     = "expire-current-bottles"
      status = "Enabled"
      filter {
        prefix = local.mirror_key_prefix
      }
      expiration {
        days = rule.value
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.mirror]
}

# ------------------------------------------------------------ access logs ----

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket; logging it into itself would loop.
  #checkov:skip=CKV_AWS_144:Access logs are not worth replicating to a second region.
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to buckets encrypted with SSE-S3, not SSE-KMS.
  #checkov:skip=CKV2_AWS_62:Nothing consumes access-log object events.
  bucket        = local.log_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/${local.access_log_prefix}*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.mirror.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }

  dynamic "statement" {
    for_each = var.enforce_tls ? [1] : []
    content {
      sid       = "DenyInsecureTransport"
      effect    = "Deny"
      actions   = ["s3:*"]
      resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      condition {
        test     = "Bool"
        variable = "aws:SecureTransport"
        values   = ["false"]
      }
    }
  }

}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
