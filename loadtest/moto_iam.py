"""moto_server whose IAM access control checks what moto can check right:
signatures, role sessions and actions.

moto 5.2.5 matches a statement's Resource against the resource it works
out for the request, which for most services (Secrets Manager, ECS, ...) is
"*" (moto/core/responses.py `call_action`; only SQS, S3, IAM and STS say
more): a least-privilege statement that names an ARN never matches "*", so
every scoped call is refused where AWS allows it. Its Condition evaluation
is the one for trust policies. So here moto checks an identity policy's
Allow statements by action only (aws.md: "it checks actions for users and
assumed roles, not resources or conditions"); resources and conditions are
checked from the wire, per API, by bottlesync-aws-audit
(scripts/terraform-check.sh, step 5e). Deny statements and trust policies
(AssumeRole) are evaluated as moto does.

moto also names a batch call's action after its API (sqs:SendMessageBatch);
IAM authorises it as the single-message action (sqs:SendMessage), and so
does this server.
"""
import sys

from moto import server
from moto.iam import access_control

_is_action_permitted = access_control.IAMPolicyStatement.is_action_permitted

# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html
_IAM_ACTION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _actions_only(self, action, resource="*", principal=None, incoming_condition_values=None):
    action = _IAM_ACTION.get(action, action)
    if principal is None and self._statement.get("Effect") == "Allow":
        statement = {k: v for k, v in self._statement.items()
                     if k not in ("Resource", "NotResource", "Condition")}
        return _is_action_permitted(access_control.IAMPolicyStatement(statement), action)
    return _is_action_permitted(self, action, resource, principal, incoming_condition_values)


access_control.IAMPolicyStatement.is_action_permitted = _actions_only
server.main(sys.argv[1:])
