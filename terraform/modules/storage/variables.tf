variable "bucket_name" {
  description = "Name of the mirror bucket (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens."
  }
}

variable "log_bucket_name" {
  description = "Name of the bucket that receives the mirror bucket's access logs. null: \"<bucket_name>-logs\"."
  type        = string
  default     = null

  validation {
    condition     = var.log_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.log_bucket_name, "x")))
    error_message = "log_bucket_name must be a valid S3 bucket name."
  }
}

variable "mirror_prefix" {
  description = "Key prefix of the mirror inside the bucket (BOTTLESYNC_PREFIX); lifecycle transitions apply below it. Empty: the whole bucket."
  type        = string
  default     = ""

  validation {
    condition     = var.mirror_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.mirror_prefix))
    error_message = "mirror_prefix must be empty or slash-separated segments of letters, digits, '.', '_' and '-', without leading or trailing slashes."
  }
}

variable "kms_key_arn" {
  description = "KMS key for default encryption of the mirror bucket. null: SSE-S3 (AES256)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", coalesce(var.kms_key_arn, "x")))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete non-empty buckets (tests only: a mirror is data)."
  type        = bool
  default     = false
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads (left by a killed worker) are aborted."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number >= 1."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object version is kept (bottles_hash.json is replaced on every run)."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number >= 1."
  }
}

variable "transitions" {
  description = "Storage-class transitions of current objects under the mirror prefix (objects under 128 KiB stay in STANDARD), by age in days, ascending. Default: INTELLIGENT_TIERING at once, which prices bottles by when they were last read, not by age (a mirror's old bottles are often its most read), with no retrieval fee."
  type = list(object({
    days          = number
    storage_class = string
  }))
  default = [
    { days = 0, storage_class = "INTELLIGENT_TIERING" },
  ]

  validation {
    condition = alltrue([
      for t in var.transitions : contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"], t.storage_class)
    ])
    error_message = "transitions: storage_class must be one brew can still download from directly: STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR (GLACIER and DEEP_ARCHIVE need a restore first)."
  }

  validation {
    condition = alltrue([
      for t in var.transitions : t.days >= (contains(["STANDARD_IA", "ONEZONE_IA"], t.storage_class) ? 30 : 0) && floor(t.days) == t.days
    ])
    error_message = "transitions: days must be whole numbers, and S3 requires at least 30 days before STANDARD_IA or ONEZONE_IA."
  }

  validation {
    condition     = alltrue([for i in range(1, max(1, length(var.transitions))) : var.transitions[i].days > var.transitions[i - 1].days])
    error_message = "transitions must be in ascending order of days."
  }
}

variable "archive_days" {
  description = "Days the dated folders (<mirror_prefix>/<YYYY-MM-DD>/, what each run downloaded: the archive view) are kept before they expire, so that each bottle is stored once, under bottles/ (which bottles_hash.json names and nothing expires). The rule matches only objects tagged bottlesync-archive=dated, which bottlesync puts on dated bottles alone. 0: keep them forever (each bottle then stored twice)."
  type        = number
  default     = 30

  validation {
    condition     = var.archive_days >= 0 && floor(var.archive_days) == var.archive_days
    error_message = "archive_days must be a whole number of days >= 0 (0 keeps the dated folders forever)."
  }
}

variable "expire_current_days" {
  description = "Delete current bottles this many days after upload. null (the default): never; a mirror that expires still-current bottles loses data."
  type        = number
  default     = null

  validation {
    condition     = var.expire_current_days == null || try(var.expire_current_days >= 1, false)
    error_message = "expire_current_days must be null (never) or >= 1."
  }
}

variable "log_retention_days" {
  description = "Days access-log objects are kept in the log bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 1
    error_message = "log_retention_days must be >= 1."
  }
}

variable "enforce_tls" {
  description = "Bucket policies that deny every request not made over TLS. false only for moto, which serves plain HTTP and enforces bucket policies."
  type        = bool
  default     = true
}

variable "policy_documents" {
  description = "IAM policy documents (JSON) merged into the mirror bucket's policy, e.g. the cdn module's bucket_policy_json. Statement ids must differ from DenyInsecureTransport."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
