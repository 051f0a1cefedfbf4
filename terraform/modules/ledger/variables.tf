variable "table_name" {
  description = "Name of the ledger table (BOTTLESYNC_LEDGER_TABLE)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3-255 letters, digits, '_', '-' or '.'."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the table. null: the AWS-managed key for DynamoDB (alias/aws/dynamodb)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", coalesce(var.kms_key_arn, "x")))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery (35 days of restorable history)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to delete the table (turn off only for throwaway stacks)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
