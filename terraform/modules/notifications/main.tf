# Where people hear about the mirror: the Slack webhook (a secret the
# functions read at startup) and an SNS topic for alarms.

locals {
  create_secret = var.enable_slack && var.slack_secret_arn == null
  secret_arn    = var.enable_slack ? (local.create_secret ? aws_secretsmanager_secret.slack[0].arn : var.slack_secret_arn) : null
}

resource "aws_secretsmanager_secret" "slack" {
  #checkov:skip=CKV2_AWS_57:A Slack webhook cannot be rotated by a Lambda: Slack issues a new URL by hand, then bump slack_webhook_url_version.
  #checkov:skip=CKV_AWS_149:Encrypted with the AWS-managed key by default; pass kms_key_arn for a customer-managed key.
  count                   = local.create_secret ? 1 : 0
  name_prefix             = "${var.name_prefix}-slack-webhook-"
  description             = "Slack incoming webhook of bottlesync (${var.name_prefix}): the plain JSON {\"webhook_url\": ...}"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days

  lifecycle {
    precondition {
      condition     = var.slack_webhook_url != null
      error_message = "Slack notifications are on but there is no webhook: set slack_webhook_url or slack_secret_arn (or enable_notifications = false)."
    }
  }
  tags = var.tags
}

# Write-only: the webhook URL never enters the Terraform state.
resource "aws_secretsmanager_secret_version" "slack" {
  count                    = local.create_secret ? 1 : 0
  secret_id                = aws_secretsmanager_secret.slack[0].id
  secret_string_wo         = jsonencode({ webhook_url = var.slack_webhook_url })
  secret_string_wo_version = var.slack_webhook_url_version
}

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key; pass kms_key_arn for a customer-managed key whose policy allows cloudwatch.amazonaws.com and events.amazonaws.com.
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}
