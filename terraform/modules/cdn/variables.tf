variable "name_prefix" {
  description = "Prefix of the names of the distribution's policies and origin access control (bottlesync-<environment>)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,39}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits or '-' (CloudFront policy names allow no other characters)."
  }
}

variable "bucket_id" {
  description = "Name of the mirror bucket (the storage module's bucket_id)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the mirror bucket: the CloudFront read grant is written for objects below it."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN (arn:aws:s3:::<bucket>)."
  }
}

variable "bucket_regional_domain_name" {
  description = "Regional domain name of the mirror bucket (<bucket>.s3.<region>.amazonaws.com): the distribution's origin."
  type        = string
}

variable "mirror_prefix" {
  description = "Key prefix of the mirror inside the bucket (BOTTLESYNC_PREFIX): the origin path, so that clients see <domain>/bottles/... and <domain>/api/.... Empty: the bucket root."
  type        = string
  default     = ""

  validation {
    condition     = var.mirror_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.mirror_prefix))
    error_message = "mirror_prefix must be empty or slash-separated segments of letters, digits, '.', '_' and '-', without leading or trailing slashes."
  }
}

variable "price_class" {
  description = "CloudFront price class: PriceClass_100 (North America, Europe: cheapest), PriceClass_200 (adds most of Asia, Middle East, Africa) or PriceClass_All."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "aliases" {
  description = "Host names clients use instead of the *.cloudfront.net name (e.g. [\"brew-mirror.example.com\"]); the first one goes into homebrew_client_env. Needs acm_certificate_arn; point a DNS CNAME/alias record at domain_name yourself."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.aliases : can(regex("^(\\*\\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", a))])
    error_message = "aliases must be lower-case DNS names such as brew-mirror.example.com."
  }

  validation {
    condition     = (length(var.aliases) == 0) == (var.acm_certificate_arn == null)
    error_message = "aliases and acm_certificate_arn go together: set both (a certificate that covers every alias) or neither (the *.cloudfront.net name and certificate)."
  }
}

variable "acm_certificate_arn" {
  description = "ACM certificate (in us-east-1, as CloudFront requires) covering every alias. null: CloudFront's default *.cloudfront.net certificate; then aliases must be empty."
  type        = string
  default     = null

  validation {
    condition     = var.acm_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[A-Za-z0-9-]+$", coalesce(var.acm_certificate_arn, "x")))
    error_message = "acm_certificate_arn must be an ACM certificate ARN in us-east-1 (CloudFront only uses certificates from us-east-1)."
  }
}

variable "log_bucket_domain_name" {
  description = "Standard access logs of the distribution to this bucket (its domain name, <bucket>.s3.amazonaws.com; the bucket must have ACLs enabled, which the storage module's buckets do not). null: no access logs."
  type        = string
  default     = null

  validation {
    condition     = var.log_bucket_domain_name == null || can(regex("^[a-z0-9][a-z0-9.-]+\\.s3(\\.[a-z0-9-]+)?\\.amazonaws\\.com$", coalesce(var.log_bucket_domain_name, "x")))
    error_message = "log_bucket_domain_name must be a bucket domain name such as my-logs.s3.amazonaws.com."
  }
}

variable "log_prefix" {
  description = "Key prefix of the access logs in log_bucket_domain_name."
  type        = string
  default     = "cloudfront/"
}

variable "web_acl_id" {
  description = "ARN of a WAFv2 web ACL (scope CLOUDFRONT) to attach. null: none."
  type        = string
  default     = null

  validation {
    condition     = var.web_acl_id == null || can(regex("^arn:aws[a-z-]*:wafv2:us-east-1:[0-9]{12}:global/webacl/", coalesce(var.web_acl_id, "x")))
    error_message = "web_acl_id must be the ARN of a WAFv2 web ACL with scope CLOUDFRONT (arn:aws:wafv2:us-east-1:<account>:global/webacl/...)."
  }
}

variable "bottle_ttl_seconds" {
  description = "How long edges keep a bottle (default and maximum TTL): a bottle's file name carries its version and rebuild, so its bytes never change."
  type        = number
  default     = 31536000

  validation {
    condition     = var.bottle_ttl_seconds >= 3600 && var.bottle_ttl_seconds <= 31536000 && floor(var.bottle_ttl_seconds) == var.bottle_ttl_seconds
    error_message = "bottle_ttl_seconds must be a whole number of seconds between 3600 (an hour) and 31536000 (a year)."
  }
}

variable "api_default_ttl_seconds" {
  description = "How long edges keep API files and image manifests when the object sets no Cache-Control (they change on every run)."
  type        = number
  default     = 300

  validation {
    condition     = var.api_default_ttl_seconds >= 0 && var.api_default_ttl_seconds <= var.api_max_ttl_seconds && floor(var.api_default_ttl_seconds) == var.api_default_ttl_seconds
    error_message = "api_default_ttl_seconds must be a whole number of seconds between 0 and api_max_ttl_seconds."
  }
}

variable "api_max_ttl_seconds" {
  description = "Longest time edges keep API files and image manifests, whatever the object's Cache-Control says."
  type        = number
  default     = 3600

  validation {
    condition     = var.api_max_ttl_seconds >= 0 && var.api_max_ttl_seconds <= 86400 && floor(var.api_max_ttl_seconds) == var.api_max_ttl_seconds
    error_message = "api_max_ttl_seconds must be a whole number of seconds between 0 and 86400 (a day)."
  }
}

variable "tags" {
  description = "Tags of the distribution (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
