#!/usr/bin/env bash
# The Terraform checks CI runs (issue 5), in one command:
#   1. terraform fmt -check -recursive terraform
#   2. terraform init + validate: the root (the module), every submodule,
#      every example (local: moto; complete: real AWS, never applied here)
#   3. terraform test: the modules' own logic and examples/complete's
#      terraform.tfvars.example, with mock providers
#   4. checkov over terraform/: zero failed checks (skips are inline, with reasons)
#   5. end to end: apply examples/local to moto_server with moto's IAM access
#      control on, run `bottlesync plan`, the worker Lambda (its hand-off of
#      a slow bottle to ECS, under a Lambda Runtime API stand-in),
#      `bottlesync work --drain`, `dlq replay`, `status` and `reconcile`,
#      each with exactly the environment the stack gives it (read from its
#      outputs) and the credentials of the role it runs as (STS AssumeRole);
#      every call they make is recorded by an audit proxy and checked against
#      that role's policies from the Terraform state, resources and
#      conditions included (bottlesync-aws-audit); the ECS worker's scale-in
#      protection is answered by an ECS agent stand-in for the task role as
#      applied; check the bucket, the Slack summary, the protection and the
#      reconcile rule, destroy.
# Prints how long each step takes. Needs no network beyond PyPI (checkov, and
# moto if .venv lacks it); `terraform init` uses the machine's provider mirror
# when there is one (see ../shared/reference/aws.md), else the registry.
#
#   scripts/terraform-check.sh            every step
#   scripts/terraform-check.sh static     steps 1-4 only
#   scripts/terraform-check.sh e2e        step 5 only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-all}
case "$MODE" in all | static | e2e) ;; *)
  echo "usage: $0 [all|static|e2e]" >&2
  exit 2
  ;;
esac

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
# A CLI configuration file that does not exist only adds warnings to every command.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "$TF_CLI_CONFIG_FILE" ]; then
  unset TF_CLI_CONFIG_FILE
fi

MOTO_VERSION=5.2.5 # as scripts/test.sh
CHECKOV_VERSION=3.3.30
# checkov pins boto3/botocore versions that moto does not want: it gets its own
# virtualenv inside the project's .venv (git-ignored), so moto's stays as is.
CHECKOV_VENV="$ROOT/.venv/checkov"
E2E_DATE=2026-11-29
PARALLEL=${TERRAFORM_CHECK_JOBS:-3}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/terraform-check.XXXXXX")
PIDS=()
TIMINGS=()

cleanup() {
  local status=$?
  # moto keeps everything in memory: stopping it removes whatever was applied.
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "== failed; logs kept in $WORK" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SCRIPT_START=$(date +%s.%N)
STEP_NAME=""
STEP_START=""
step() {
  STEP_NAME=$1
  STEP_START=$(date +%s.%N)
  echo "== $STEP_NAME"
}
done_step() {
  local secs
  secs=$(awk -v a="$STEP_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "   $STEP_NAME: ${secs} s"
  TIMINGS+=("$(printf '%-62s %7s s' "$STEP_NAME" "$secs")")
}

# ------------------------------------------------------------ terraform init ----

PLUGIN_DIR=${TERRAFORM_PLUGIN_DIR:-}
if [ -z "$PLUGIN_DIR" ]; then
  found=$(find / -maxdepth 4 -name registry.terraform.io -not -path '/proc/*' -print -quit 2>/dev/null || true)
  [ -n "$found" ] && PLUGIN_DIR=$(dirname "$found")
fi
INIT_ARGS=(-input=false -no-color)
if [ -n "$PLUGIN_DIR" ]; then
  INIT_ARGS+=("-plugin-dir=$PLUGIN_DIR")
fi

# Every directory with Terraform configuration: the root, the modules, the examples.
TF_DIRS=(terraform)
for d in terraform/modules/*/ terraform/examples/*/; do
  TF_DIRS+=("${d%/}")
done

# Runs "$1" (a function) over TF_DIRS, PARALLEL at a time; prints the logs of failures.
for_each_dir() {
  local fn=$1 dir log
  shift
  local -a dirs=("$@") running=()
  mkdir -p "$WORK/$fn"
  for dir in "${dirs[@]}"; do
    log="$WORK/$fn/$(echo "$dir" | tr / _).log"
    ("$fn" "$dir" >"$log" 2>&1 && echo ok >"$log.status" || echo failed >"$log.status") &
    running+=($!)
    if [ "${#running[@]}" -ge "$PARALLEL" ]; then
      wait "${running[0]}"
      running=("${running[@]:1}")
    fi
  done
  wait
  local failed=0
  for dir in "${dirs[@]}"; do
    log="$WORK/$fn/$(echo "$dir" | tr / _).log"
    if [ "$(cat "$log.status")" != ok ]; then
      echo "-- $fn $dir failed:"
      cat "$log"
      failed=1
    else
      echo "   $dir: ok"
    fi
  done
  return "$failed"
}

# (Run in an `&&` context, where set -e does not apply: chain explicitly.)
init_and_validate() {
  cd "$ROOT/$1" &&
    terraform init -backend=false "${INIT_ARGS[@]}" &&
    terraform validate -no-color
}

run_tests() {
  cd "$ROOT/$1" || return 1
  if [ -f terraform.tfvars.example ]; then
    # An example's terraform.tfvars.example plans as it is (examples/complete).
    terraform test -no-color -var-file=terraform.tfvars.example
  else
    terraform test -no-color
  fi
}

# ------------------------------------------------------------ static checks ----

if [ "$MODE" != e2e ]; then
  step "1. terraform fmt -check"
  terraform fmt -check -recursive -diff terraform
  done_step

  step "2. terraform init + validate (${#TF_DIRS[@]} directories)"
  [ -n "$PLUGIN_DIR" ] && echo "   provider mirror: $PLUGIN_DIR" || echo "   no provider mirror: plain terraform init"
  for_each_dir init_and_validate "${TF_DIRS[@]}"
  done_step

  TEST_DIRS=()
  for d in "${TF_DIRS[@]}"; do
    if compgen -G "$d/tests/*.tftest.hcl" >/dev/null; then
      TEST_DIRS+=("$d")
    fi
  done
  step "3. terraform test (${#TEST_DIRS[@]} directories, mock providers)"
  for_each_dir run_tests "${TEST_DIRS[@]}"
  awk '/^(Success|Failure)! [0-9]+ passed/ { files++; passed += $2; failed += $4 }
    END { printf "   %d test files: %d runs passed, %d failed\n", files, passed, failed }' "$WORK"/run_tests/*.log
  done_step

  step "4. checkov $CHECKOV_VERSION"
  if ! "$CHECKOV_VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    echo "   installing checkov==$CHECKOV_VERSION into $CHECKOV_VENV"
    python3 -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  fi
  # --skip-download: no Prisma Cloud look-ups (offline); --skip-path: the
  # provider links of the init above. Every skip must be inline, with a reason.
  "$CHECKOV_VENV/bin/checkov" --skip-download --directory terraform --framework terraform \
    --skip-path '\.terraform' --compact --output json >"$WORK/checkov.json" 2>"$WORK/checkov.log" || true
  python3 - "$WORK/checkov.json" <<'EOF'
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except ValueError:
    print("   checkov produced no report:"); print(open(sys.argv[1]).read()[-2000:]); sys.exit(1)
reports = data if isinstance(data, list) else [data]
results = [r.get("results", {}) for r in reports]
failed = [c for r in results for c in r.get("failed_checks", [])]
skipped = [c for r in results for c in r.get("skipped_checks", [])]
passed = sum(len(r.get("passed_checks", [])) for r in results)
unexplained = [c for c in skipped
               if (c.get("check_result", {}).get("suppress_comment") or "").strip() in ("", "No comment provided")]
print(f"   passed {passed}, failed {len(failed)}, skipped inline with a reason {len(skipped) - len(unexplained)}")
for c in failed:
    print(f"   FAILED {c['check_id']} {c['check_name']}\n          {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})")
for c in unexplained:
    print(f"   SKIPPED WITHOUT A REASON {c['check_id']} {c['resource']} ({c['file_path']})")
if failed or unexplained:
    print("   fix them, or skip inline: #checkov:skip=<ID>:<why>")
    sys.exit(1)
EOF
  done_step
fi

# --------------------------------------------------------------- end to end ----

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # url, seconds
  local deadline=$((SECONDS + $2))
  until curl -fs -o /dev/null "$1"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "not up after $2 s: $1" >&2
      return 1
    fi
    sleep 0.2
  done
}

# `terraform output -json NAME` (a map) as NUL-separated KEY=VALUE.
env_from_output() {
  (cd "$ROOT/terraform/examples/local" && terraform output -json "$1") |
    python3 -c 'import json, sys; sys.stdout.write("".join(f"{k}={v}\0" for k, v in sorted(json.load(sys.stdin).items())))'
}

# Runs a program as a process of the stack: with only the given settings
# (every BOTTLESYNC_* of the caller's environment is dropped, the stack's are
# added), moto through the audit proxies, and the credentials of the role
# session made for it (new_session).
run_as() { # session, env-array-name, program, args...
  local session=$1
  local -n settings=$2
  shift 2
  local -a unset_args=("${UNSET_AWS[@]}")
  local name
  for name in $(compgen -e | grep '^BOTTLESYNC_' || true); do
    unset_args+=(-u "$name")
  done
  local -a credentials
  mapfile -t credentials <"$WORK/session-$session.env"
  env "${unset_args[@]}" "${AUDITED_ENV[@]}" "${credentials[@]}" "${settings[@]}" "$@"
}

run_bottlesync() { # session, env-array-name, args...
  local session=$1 settings=$2
  shift 2
  run_as "$session" "$settings" "$CARGO_TARGET_DIR/debug/bottlesync" "$@"
}

# Assumes the stack's role $2 (a key of the iam_role_names output) for the
# process $1: writes its credentials to $WORK/session-$1.env and adds its
# access key, with the role's policies as the Terraform state holds them,
# to $WORK/principals.json for bottlesync-aws-audit.
new_session() { # process, role
  env "${UNSET_AWS[@]}" "${MOTO_ENV[@]}" .venv/bin/python - "$WORK" "$1" "$2" <<'EOF'
import json, os, sys
import boto3
work, process, use = sys.argv[1:4]
out = {k: v["value"] for k, v in json.load(open(f"{work}/outputs.json")).items()}
role_name = out["iam_role_names"][use]
# The role's policies from the Terraform state: inline ones, and managed
# ones attached by this configuration.
state = json.load(open(f"{work}/state.json"))
def resources(module):
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from resources(child)
found = list(resources(state["values"]["root_module"]))
managed = {r["values"]["arn"]: r["values"]["policy"] for r in found if r["type"] == "aws_iam_policy"}
policies = [r["values"]["policy"] for r in found
            if r["type"] == "aws_iam_role_policy" and r["values"]["role"] == role_name]
policies += [managed[r["values"]["policy_arn"]] for r in found
             if r["type"] == "aws_iam_role_policy_attachment" and r["values"]["role"] == role_name]
assert policies, f"no policy of role {role_name} in the Terraform state"
iam = boto3.client("iam")
# On AWS the Lambda and ECS services assume these roles; here the harness's
# user stands in for them, so the trust policy names it (moto checks trust
# policies on AssumeRole, and fails on service principals).
admin = boto3.client("sts").get_caller_identity()["Arn"]
iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "sts:AssumeRole"}]}))
role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
c = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=process)["Credentials"]
with open(f"{work}/session-{process}.env", "w") as f:
    f.write(f"AWS_ACCESS_KEY_ID={c['AccessKeyId']}\nAWS_SECRET_ACCESS_KEY={c['SecretAccessKey']}\n"
            f"AWS_SESSION_TOKEN={c['SessionToken']}\n")
path = f"{work}/principals.json"
principals = json.load(open(path)) if os.path.exists(path) else {}
principals[c["AccessKeyId"]] = {"process": process, "role": role_name, "policies": policies}
json.dump(principals, open(path, "w"), indent=1)
EOF
}

if [ "$MODE" != static ]; then
  # scripts/test.sh sets BOTTLESYNC_PREBUILT=1: `cargo test --workspace` has
  # just built these binaries, and `cargo build` would build them again with
  # another feature set (dev-dependencies unify features only for tests).
  BINARIES=(bottlesync bottlesync-worker-lambda bottlesync-fixture bottlesync-ecs-agent bottlesync-aws-audit)
  prebuilt=${BOTTLESYNC_PREBUILT:-0}
  for bin in "${BINARIES[@]}"; do
    [ -x "$CARGO_TARGET_DIR/debug/$bin" ] || prebuilt=0
  done
  if [ "$prebuilt" = 1 ]; then
    step "5a. ${BINARIES[*]}: as cargo test built them"
  else
    step "5a. build ${BINARIES[*]}"
    cargo build --quiet --locked -p bottlesync --bin bottlesync --bin bottlesync-worker-lambda \
      -p bottlesync-loadtest --bin bottlesync-fixture --bin bottlesync-ecs-agent \
      -p bottlesync-aws-harness --bin bottlesync-aws-audit
  fi
  done_step

  step "5b. start moto_server, audit proxies, the Homebrew stand-in, a webhook receiver"
  if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "   installing moto[server]==$MOTO_VERSION into .venv"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  MOTO_PORT=$(free_port)
  MOTO_DDB_PORT=$(free_port)
  MOTO="http://127.0.0.1:$MOTO_PORT"
  MOTO_DDB="http://127.0.0.1:$MOTO_DDB_PORT"
  # moto's access control (aws.md) is switched on after the apply (5d);
  # moto_iam.py makes it check actions without refusing every scoped ARN.
  .venv/bin/python loadtest/moto_iam.py -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  PIDS+=($!)
  # DynamoDB from a server that answers one request at a time: moto's
  # conditional writes are not atomic under concurrency. Its IAM is not the
  # other server's, so it checks nothing: the audit checks its calls.
  .venv/bin/python loadtest/moto_serial.py -H 127.0.0.1 -p "$MOTO_DDB_PORT" >"$WORK/moto-dynamodb.log" 2>&1 &
  PIDS+=($!)

  # Every call of the stack's processes goes through one of these.
  start_audit() { # upstream, calls file -> AUDIT_URL
    local fifo="$WORK/audit-$(basename "$2" .jsonl).fifo" fd
    mkfifo "$fifo"
    "$CARGO_TARGET_DIR/debug/bottlesync-aws-audit" proxy --upstream "$1" --calls "$2" >"$fifo" 2>"$2.log" &
    PIDS+=($!)
    exec {fd}<"$fifo"
    read -r -t 30 line <&"$fd" || {
      echo "bottlesync-aws-audit did not start: $(cat "$2.log")" >&2
      exit 1
    }
    AUDIT_URL=${line#AWS_AUDIT_URL=}
  }
  start_audit "$MOTO" "$WORK/calls.jsonl"
  AUDIT_MOTO=$AUDIT_URL
  start_audit "$MOTO_DDB" "$WORK/calls-dynamodb.jsonl"
  AUDIT_MOTO_DDB=$AUDIT_URL

  mkfifo "$WORK/fixture.fifo"
  "$CARGO_TARGET_DIR/debug/bottlesync-fixture" --preset tricky >"$WORK/fixture.fifo" 2>"$WORK/fixture.log" &
  PIDS+=($!)
  exec 3<"$WORK/fixture.fifo"
  read -r -t 30 line <&3 || {
    echo "bottlesync-fixture did not start: $(cat "$WORK/fixture.log")" >&2
    exit 1
  }
  API_URL=${line#API_URL=}
  cat <&3 >/dev/null & # keep draining its stdout
  PIDS+=($!)

  WEBHOOK_PORT=$(free_port)
  cat >"$WORK/webhook.py" <<'EOF'
import http.server, json, sys
out = open(sys.argv[2], "a")
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(json.dumps(json.loads(body)) + "\n"); out.flush()
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
EOF
  python3 "$WORK/webhook.py" "$WEBHOOK_PORT" "$WORK/webhook.jsonl" 2>"$WORK/webhook.log" &
  PIDS+=($!)
  touch "$WORK/webhook.jsonl"
  wait_http "$MOTO/moto-api/" 30
  wait_http "$MOTO_DDB/moto-api/" 30

  echo "   moto $MOTO (DynamoDB $MOTO_DDB; audited at $AUDIT_MOTO, $AUDIT_MOTO_DDB), stand-in $API_URL, webhook http://127.0.0.1:$WEBHOOK_PORT/hook"
  done_step

  step "5c. terraform apply examples/local"
  # moto stores the Lambda zips and never runs them: placeholders will do.
  printf '#!/bin/sh\necho "placeholder: build the real zips with scripts/package.sh" >&2\nexit 1\n' >"$WORK/bootstrap"
  python3 - "$WORK" <<'EOF'
import sys, zipfile
work = sys.argv[1]
for name in ("planner", "worker"):
    with zipfile.ZipFile(f"{work}/{name}.zip", "w") as z:
        info = zipfile.ZipInfo("bootstrap"); info.external_attr = 0o755 << 16
        z.writestr(info, open(f"{work}/bootstrap").read())
EOF
  cat >"$WORK/moto.tfvars" <<EOF
moto_endpoint          = "$MOTO"
moto_dynamodb_endpoint = "$MOTO_DDB"
api_url                = "$API_URL"
slack_webhook_url      = "http://127.0.0.1:$WEBHOOK_PORT/hook"
planner_zip_path       = "$WORK/planner.zip"
worker_zip_path        = "$WORK/worker.zip"
# Every run goes to the ECS queue, so that the planner also wakes the ECS service.
size_threshold_gb = 0.000000001
EOF
  (cd terraform/examples/local && terraform init -reconfigure "${INIT_ARGS[@]}" \
    -backend-config="path=$WORK/terraform.tfstate" >"$WORK/init-e2e.log" 2>&1) || {
    cat "$WORK/init-e2e.log"
    exit 1
  }
  (cd terraform/examples/local && timeout 420 terraform apply -auto-approve -no-color -parallelism=20 \
    -var-file="$WORK/moto.tfvars" >"$WORK/apply.log" 2>&1) || {
    tail -40 "$WORK/apply.log"
    exit 1
  }
  grep -E "^Apply complete" "$WORK/apply.log" | sed 's/^/   /'
  (cd terraform/examples/local && terraform output -json) >"$WORK/outputs.json"
  (cd terraform/examples/local && terraform show -json) >"$WORK/state.json"
  done_step

  step "5d. the stack's processes, each as its role: plan, worker Lambda hand-off, work --drain, dlq replay, status, reconcile"
  # moto's IAM access control, on from here to the destroy: every call must
  # be signed by a known user or an assumed role, and its action allowed by
  # that principal's policies (aws.md). moto does not check resources or
  # conditions: the audit (5e) does. Applied without it: with it on, moto
  # 5.2.5 refuses the provider's Lambda calls (SignatureDoesNotMatch on
  # GET /2015-03-31/functions/...), which no process of the stack makes.
  # The harness's own user (made before access control is on) stands in for
  # the Lambda and ECS services when assuming the stack's roles, and reads
  # the results.
  UNSET_AWS=(-u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_SECURITY_TOKEN -u AWS_ROLE_ARN -u AWS_WEB_IDENTITY_TOKEN_FILE)
  BASE_ENV=(
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  )
  read -r ADMIN_KEY ADMIN_SECRET < <(env "${UNSET_AWS[@]}" "${BASE_ENV[@]}" AWS_ACCESS_KEY_ID=bootstrap \
    AWS_SECRET_ACCESS_KEY=bootstrap .venv/bin/python - "$MOTO" <<'EOF'
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1])
iam.create_user(UserName="bottlesync-harness")
iam.put_user_policy(UserName="bottlesync-harness", PolicyName="admin", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="bottlesync-harness")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
EOF
  )
  [ -n "$ADMIN_KEY" ] || {
    echo "could not create the harness's IAM user on moto: $(tail -5 "$WORK/moto.log")" >&2
    exit 1
  }
  moto_access_control() { # on | off
    local count=0
    [ "$1" = on ] || count=inf
    curl -fsS -o /dev/null -X POST -H "Content-Type: text/plain" --data-binary "$count" "$MOTO/moto-api/reset-auth"
  }
  moto_access_control on
  # Proof that it is on: moto's default credentials are now refused.
  if env "${UNSET_AWS[@]}" "${BASE_ENV[@]}" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    .venv/bin/python -c 'import boto3, sys; boto3.client("sqs", endpoint_url=sys.argv[1]).list_queues()' "$MOTO" 2>/dev/null; then
    echo "   moto's access control is not on: an unknown key was answered" >&2
    exit 1
  fi
  MOTO_ENV=("AWS_ENDPOINT_URL=$MOTO" "AWS_ENDPOINT_URL_DYNAMODB=$MOTO_DDB"
    "AWS_ACCESS_KEY_ID=$ADMIN_KEY" "AWS_SECRET_ACCESS_KEY=$ADMIN_SECRET" "${BASE_ENV[@]}")
  # The stack's processes: through the audit proxies, with a role session each.
  AUDITED_ENV=("AWS_ENDPOINT_URL=$AUDIT_MOTO" "AWS_ENDPOINT_URL_DYNAMODB=$AUDIT_MOTO_DDB" "${BASE_ENV[@]}")
  mapfile -d '' PLANNER_ENV < <(env_from_output planner_environment)
  mapfile -d '' WORKER_ENV < <(env_from_output worker_environment)
  mapfile -d '' ECS_ENV < <(env_from_output ecs_task_environment)
  OPERATOR_ENV=("${PLANNER_ENV[@]}")
  printf '   planner: %s\n' "${PLANNER_ENV[@]}" | grep -E 'QUEUE_URL|SECRET|BUCKET|PREFIX|ECS_SERVICE' || true
  new_session plan planner
  new_session worker-lambda worker
  new_session lambda-event-source worker
  new_session ecs-worker ecs-task
  new_session lambda-queue-drain worker
  new_session dlq-replay operator
  new_session status operator
  new_session reconcile planner

  run_bottlesync plan PLANNER_ENV plan --date "$E2E_DATE" >"$WORK/plan.json" 2>"$WORK/plan.log" || {
    cat "$WORK/plan.log"
    exit 1
  }
  read -r ROUTED_QUEUE ENQUEUED WORK_ENV_NAME < <(python3 - "$WORK/plan.json" "$WORK/outputs.json" <<'EOF'
import json, sys
plan = json.load(open(sys.argv[1])); out = json.load(open(sys.argv[2]))
to_ecs = plan.get("to_ecs", plan["enqueued"] if plan.get("route") == "ecs" else 0)
assert plan["enqueued"] > 0, f"the plan enqueued nothing: {plan}"
assert to_ecs == plan["enqueued"], f"size_threshold_gb routes every bottle to ECS, the plan did not: {plan}"
print(out["ecs_queue_url"]["value"], plan["enqueued"], "ECS_ENV")
EOF
  )
  echo "   plan: $ENQUEUED bottles enqueued to $ROUTED_QUEUE"

  # The worker Lambda hands a bottle it cannot finish before its deadline to
  # the ECS queue. One of the plan's messages is moved to the Lambda queue;
  # the event source mapping's receive (with the function's role, as Lambda
  # does) makes the SQS event; the worker Lambda binary runs under a Lambda
  # Runtime API stand-in whose deadline leaves it 3 s of work, while the
  # Homebrew stand-in sends bottles at 200 bytes/s.
  env "${UNSET_AWS[@]}" "${MOTO_ENV[@]}" .venv/bin/python - "$WORK" <<'EOF'
import json, sys
import boto3
work = sys.argv[1]
out = {k: v["value"] for k, v in json.load(open(f"{work}/outputs.json")).items()}
sqs = boto3.client("sqs")
got = sqs.receive_message(QueueUrl=out["ecs_queue_url"], MaxNumberOfMessages=1, WaitTimeSeconds=5)["Messages"][0]
sqs.send_message(QueueUrl=out["lambda_queue_url"], MessageBody=got["Body"])
sqs.delete_message(QueueUrl=out["ecs_queue_url"], ReceiptHandle=got["ReceiptHandle"])
open(f"{work}/moved-message.json", "w").write(got["Body"])
EOF
  STANDIN_ROOT=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' "$API_URL")
  curl -fsS -X PUT -H 'content-type: application/json' -d '{"bytes_per_sec": 200}' "$STANDIN_ROOT/__standin/conn_rate"
  lambda_event_source() { # receive | delete
    run_as lambda-event-source WORKER_ENV .venv/bin/python - "$WORK" "$1" <<'EOF'
import json, os, sys
import boto3
work, what = sys.argv[1:3]
queue = os.environ["BOTTLESYNC_QUEUE_URL"]
sqs = boto3.client("sqs")
if what == "receive":
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5,
                              AttributeNames=["All"], VisibilityTimeout=900)["Messages"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"} for m in got]
    json.dump({"Records": records}, open(f"{work}/lambda-event.json", "w"))
else:
    # As the event source mapping does: delete what the batch response does not list.
    event = json.load(open(f"{work}/lambda-event.json"))
    answer = json.load(open(f"{work}/lambda-answer.json"))
    assert answer["kind"] == "response", f"the worker Lambda failed: {answer}"
    failed = {f["itemIdentifier"] for f in answer["body"].get("batchItemFailures", [])}
    assert not failed, f"the worker Lambda asked to retry {failed} instead of handing them to ECS"
    for r in event["Records"]:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=r["receiptHandle"])
    print(f"   worker Lambda: answered its invocation of {len(event['Records'])} record(s) asking no retry (its hand-off to the ECS queue: 5e)")
EOF
  }
  lambda_event_source receive
  RUNTIME_PORT=$(free_port)
  .venv/bin/python loadtest/lambda_runtime.py "$RUNTIME_PORT" "$WORK/lambda-event.json" 23 \
    "arn:aws:lambda:us-east-1:123456789012:function:bottlesync-local-worker" "$WORK/lambda-answer.json" \
    2>"$WORK/lambda-runtime.log" &
  PIDS+=($!)
  # (Any answer will do: the stand-in answers 404 outside the Runtime API.)
  until curl -s -o /dev/null "http://127.0.0.1:$RUNTIME_PORT/"; do sleep 0.1; done
  LAMBDA_ENV=("${WORKER_ENV[@]}" "AWS_LAMBDA_RUNTIME_API=127.0.0.1:$RUNTIME_PORT"
    AWS_LAMBDA_FUNCTION_NAME=bottlesync-local-worker AWS_LAMBDA_FUNCTION_VERSION='$LATEST'
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/bottlesync-local-worker
    AWS_LAMBDA_LOG_STREAM_NAME=local)
  run_as worker-lambda LAMBDA_ENV "$CARGO_TARGET_DIR/debug/bottlesync-worker-lambda" >"$WORK/worker-lambda.log" 2>&1 &
  LAMBDA_PID=$!
  PIDS+=($LAMBDA_PID)
  deadline=$((SECONDS + 60))
  until [ -s "$WORK/lambda-answer.json" ]; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$LAMBDA_PID" 2>/dev/null; then
      echo "   the worker Lambda did not answer its invocation:" >&2
      tail -30 "$WORK/worker-lambda.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  kill "$LAMBDA_PID" 2>/dev/null || true
  lambda_event_source delete
  curl -fsS -X PUT -H 'content-type: application/json' -d '{"bytes_per_sec": 0}' "$STANDIN_ROOT/__standin/conn_rate"

  # The ECS worker asks the ECS agent for scale-in protection with the task
  # role: the agent stand-in answers for the role `terraform apply` created
  # (its policies read back from moto's IAM) and refuses, as ECS does, when
  # ecs:UpdateTaskProtection is missing.
  env "${UNSET_AWS[@]}" "${MOTO_ENV[@]}" .venv/bin/python - "$WORK/outputs.json" >"$WORK/ecs-task-policy.json" <<'EOF'
import json, sys
import boto3
out = json.load(open(sys.argv[1]))
role = out["iam_role_names"]["value"]["ecs-task"]
iam = boto3.client("iam")
statements = []
for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    found = document["Statement"]
    statements += found if isinstance(found, list) else [found]
json.dump({"Version": "2012-10-17", "Statement": statements}, sys.stdout)
EOF
  mkfifo "$WORK/ecs-agent.fifo"
  "$CARGO_TARGET_DIR/debug/bottlesync-ecs-agent" --policy-file "$WORK/ecs-task-policy.json" \
    >"$WORK/ecs-agent.fifo" 2>"$WORK/ecs-agent.log" &
  PIDS+=($!)
  exec 4<"$WORK/ecs-agent.fifo"
  read -r -t 30 line <&4 || {
    echo "bottlesync-ecs-agent did not start: $(cat "$WORK/ecs-agent.log")" >&2
    exit 1
  }
  ECS_AGENT_URI=${line#ECS_AGENT_URI=}
  cat <&4 >/dev/null & # keep draining its stdout
  PIDS+=($!)
  ECS_ENV+=("ECS_AGENT_URI=$ECS_AGENT_URI")
  run_bottlesync ecs-worker ECS_ENV work --drain --drain-grace 3 --queue-url "$ROUTED_QUEUE" \
    >"$WORK/work.json" 2>"$WORK/work.log" || {
    tail -30 "$WORK/work.log"
    exit 1
  }
  echo "   work: $(tr -d ' \n' <"$WORK/work.json")"

  # A dead letter (a copy of the moved bottle's message, as SQS's redrive
  # leaves it) replayed by an operator as a new run. Its message waits
  # while a reconcile with a 1 s stall threshold finds the run stalled and
  # reads its counters (BatchGetItem); then the queue is drained again (the
  # ledger knows the bottle: nothing is fetched) and reconciled as scheduled.
  env "${UNSET_AWS[@]}" "${MOTO_ENV[@]}" .venv/bin/python - "$WORK" <<'EOF'
import json, sys
import boto3
work = sys.argv[1]
out = {k: v["value"] for k, v in json.load(open(f"{work}/outputs.json")).items()}
boto3.client("sqs").send_message(QueueUrl=out["dlq_url"], MessageBody=open(f"{work}/moved-message.json").read())
EOF
  run_bottlesync dlq-replay OPERATOR_ENV dlq replay >"$WORK/replay.json" 2>"$WORK/replay.log" || {
    tail -30 "$WORK/replay.log"
    exit 1
  }
  echo "   dlq replay: $(tr -d ' \n' <"$WORK/replay.json")"
  run_bottlesync status OPERATOR_ENV status >"$WORK/status.txt" 2>"$WORK/status.log" || {
    tail -30 "$WORK/status.log"
    exit 1
  }
  sleep 2
  STALL_ENV=("${PLANNER_ENV[@]}" BOTTLESYNC_RUN_STALL_MINUTES=0.0167)
  run_bottlesync reconcile STALL_ENV reconcile >"$WORK/reconcile-stalled.json" 2>"$WORK/reconcile-stalled.log" || {
    tail -30 "$WORK/reconcile-stalled.log"
    exit 1
  }
  read -r REPLAY_QUEUE REPLAY_SESSION REPLAY_ENV < <(python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
out = {k: v["value"] for k, v in json.load(open(f"{work}/outputs.json")).items()}
replay = json.load(open(f"{work}/replay.json"))
runs = {r["run_id"]: r for r in json.load(open(f"{work}/reconcile-stalled.json"))["runs"]}
run = runs.get(replay["run_id"])
assert run and run["finished"] and run["found_stored"] == 1, f"the replayed run, stalled, was not settled: {run}"
print(f"   reconcile (1 s stall threshold): the replayed run {run['verdict']}, its bottle found stored", file=sys.stderr)
if replay["to_ecs"]:
    print(out["ecs_queue_url"], "ecs-worker", "ECS_ENV")
else:
    print(out["lambda_queue_url"], "lambda-queue-drain", "WORKER_ENV")
EOF
  )
  run_bottlesync "$REPLAY_SESSION" "$REPLAY_ENV" work --drain --drain-grace 3 --queue-url "$REPLAY_QUEUE" \
    >"$WORK/work-replayed.json" 2>"$WORK/work-replayed.log" || {
    tail -30 "$WORK/work-replayed.log"
    exit 1
  }
  run_bottlesync reconcile PLANNER_ENV reconcile >"$WORK/reconcile.json" 2>"$WORK/reconcile.log" || {
    tail -30 "$WORK/reconcile.log"
    exit 1
  }
  done_step

  step "5e. every call each process made, against its role's policies in the Terraform state"
  # The calls roles once lacked (issue 18) must stay exercised: the stalled
  # run's counters (BatchGetItem) and the worker Lambda's hand-off.
  ECS_QUEUE_NAME=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ecs_queue_url"]["value"].rsplit("/", 1)[1])' "$WORK/outputs.json")
  "$CARGO_TARGET_DIR/debug/bottlesync-aws-audit" check --calls "$WORK/calls.jsonl" \
    --calls "$WORK/calls-dynamodb.jsonl" --principals "$WORK/principals.json" \
    --expect reconcile=dynamodb:BatchGetItem \
    --expect "worker-lambda=sqs:SendMessage@arn:aws:sqs:*:$ECS_QUEUE_NAME" \
    --expect plan=sqs:SendMessage --expect ecs-worker=s3:PutObject --expect dlq-replay=sqs:DeleteMessage
  done_step

  step "5f. check the mirror, the ledger's summary and the stack"
  env "${UNSET_AWS[@]}" "${MOTO_ENV[@]}" .venv/bin/python - "$WORK" "$E2E_DATE" "$ENQUEUED" "$WORK_ENV_NAME" "$ECS_AGENT_URI" <<'EOF'
import json, re, sys, urllib.request
import boto3
work, date, enqueued, work_env, agent_uri = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
out = {k: v["value"] for k, v in json.load(open(f"{work}/outputs.json")).items()}
bucket, prefix = out["bucket"], out["mirror_prefix"]
s3 = boto3.client("s3")
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]
bottles = [k for k in keys if re.fullmatch(re.escape(f"{prefix}/{date}/") + r"[^/]+\.bottle(\.\d+)?\.tar\.gz", k)]
problems = []
if len(bottles) != enqueued:
    problems.append(f"{len(bottles)} bottles under {prefix}/{date}/, {enqueued} enqueued")
hash_key = f"{prefix}/bottles_hash.json"
if hash_key not in keys:
    problems.append(f"no {hash_key}")
else:
    # The record names each bottle's flat key (the object that stays); the
    # dated one is archive, tagged for the bucket's archive rule.
    record = json.loads(s3.get_object(Bucket=bucket, Key=hash_key)["Body"].read())
    recorded = {f"{prefix}/{b['key']}" for b in record["bottles"].values()}
    flat = {f"{prefix}/bottles/{k.rsplit('/', 1)[1]}" for k in bottles}
    missing = flat - recorded
    if missing:
        problems.append(f"flat keys missing from bottles_hash.json: {sorted(missing)}")
    if flat - set(keys):
        problems.append(f"flat copies missing: {sorted(flat - set(keys))}")
archive_tag = [{"Key": "bottlesync-archive", "Value": "dated"}]
tagged = [k for k in bottles if s3.get_object_tagging(Bucket=bucket, Key=k)["TagSet"] != archive_tag]
if tagged:
    problems.append(f"dated bottles without the archive tag {archive_tag}: {tagged}")
kept = [k for k in keys if not re.match(re.escape(f"{prefix}/") + r"\d{4}-\d{2}-\d{2}/", k)]
inherited = [k for k in kept if s3.get_object_tagging(Bucket=bucket, Key=k)["TagSet"]]
if inherited:
    problems.append(f"tagged objects outside the dated folders (the archive rule would expire them): {inherited}")
rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
archive = rules.get("expire-dated-archive", {})
if archive.get("Filter") != {"Tag": archive_tag[0]} or archive.get("Expiration", {}).get("Days") != 30:
    problems.append(f"archive rule on the applied bucket: {archive}")
else:
    print(f"   archive rule: objects tagged {archive_tag[0]['Key']}={archive_tag[0]['Value']} ({len(bottles)} dated bottles) expire after 30 days; {len(kept)} other objects untagged")
stats = json.load(open(f"{work}/work.json"))
if stats.get("stored") != enqueued or stats.get("failed"):
    problems.append(f"work stored {stats.get('stored')} of {enqueued}, failed {stats.get('failed')}")
titles = [json.loads(l).get("text", "").splitlines()[0] for l in open(f"{work}/webhook.jsonl") if l.strip()]
if not any("Sync Started" in t for t in titles) or not any("Sync Complete" in t for t in titles):
    problems.append(f"Slack (through the secret) got {titles}, not Started and Complete")
if work_env == "ECS_ENV":
    ecs = boto3.client("ecs")
    service = ecs.describe_services(cluster=out["ecs_cluster_name"], services=[out["ecs_service_name"]])["services"][0]
    if service["desiredCount"] < 1:
        problems.append(f"the planner did not wake the ECS service (desired {service['desiredCount']})")
    else:
        print(f"   ECS service woken by the planner: desired count {service['desiredCount']}")
if work_env == "ECS_ENV":
    protection = json.load(urllib.request.urlopen(f"{agent_uri}/__standin/requests", timeout=10))
    puts = [r for r in protection if r["method"] == "PUT"]
    refused = [r for r in protection if r["outcome"] != "ok"]
    if not puts or puts[0]["enabled"] is not True or puts[-1]["enabled"] is not False or refused:
        problems.append(f"task scale-in protection with the applied task role: {protection}")
    else:
        print(f"   task protection granted to the applied task role ({len(puts)} requests, dropped when idle)")
events = boto3.client("events")
rule = events.describe_rule(Name=out["reconcile_rule_name"])
targets = events.list_targets_by_rule(Rule=out["reconcile_rule_name"])["Targets"]
if rule.get("State") != "ENABLED" or [json.loads(t.get("Input", "null")) for t in targets] != [{"kind": "reconcile"}]:
    problems.append(f"reconcile rule {rule.get('ScheduleExpression')} {rule.get('State')}, targets {targets}")
else:
    print(f"   reconcile rule {out['reconcile_rule_name']}: {rule['ScheduleExpression']}, input {targets[0]['Input']}")
dlq = boto3.client("sqs").get_queue_attributes(QueueUrl=out["dlq_url"], AttributeNames=["ApproximateNumberOfMessages"])
if int(dlq["Attributes"]["ApproximateNumberOfMessages"]):
    problems.append(f"{dlq['Attributes']['ApproximateNumberOfMessages']} messages in the DLQ")
print(f"   {len(bottles)} bottles in s3://{bucket}/{prefix}/{date}/, {hash_key} lists their flat keys; Slack: {titles}")
if problems:
    print("\n".join("   FAIL: " + p for p in problems)); sys.exit(1)
EOF
  done_step

  step "5g. terraform destroy"
  moto_access_control off
  # moto ignores encoding-type=url in ListObjectVersions, so the provider's
  # force_destroy misreads keys with '+' (gtk+3, libsigc++) and loops forever:
  # empty the buckets with boto3 first.
  env "${UNSET_AWS[@]}" "${MOTO_ENV[@]}" .venv/bin/python - "$WORK/outputs.json" <<'EOF'
import json, sys
import boto3
bucket = json.load(open(sys.argv[1]))["bucket"]["value"]
for name in (bucket, bucket + "-logs"):
    boto3.resource("s3").Bucket(name).object_versions.delete()
EOF
  (cd terraform/examples/local && timeout 300 terraform destroy -auto-approve -no-color -parallelism=20 \
    -var-file="$WORK/moto.tfvars" >"$WORK/destroy.log" 2>&1) || {
    tail -30 "$WORK/destroy.log"
    exit 1
  }
  grep -E "^Destroy complete" "$WORK/destroy.log" | sed 's/^/   /'
  done_step
fi

echo "== timings"
printf '   %s\n' "${TIMINGS[@]}"
awk -v a="$SCRIPT_START" -v b="$(date +%s.%N)" 'BEGIN { printf "   %-62s %7.1f s\n", "total", b - a }'
